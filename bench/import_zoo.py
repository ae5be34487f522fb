"""Import census: every torchvision classification model and timm's CNN families through
``Arch.from_module``, one process each with a time limit.

For each model: accepted or the refusal reason; Eqn. (1) against fvcore's conv count of the
module (ConvNeXt-style pointwise Linear layers on channels-last maps counted as the 1x1
convs they are, a 1x1 conv classifier as the fc it is); the relative logits difference of ``build(arch, weights_from=model)`` with
batch-norm statistics, conv biases and the parameters of every other norm randomised (so no
norm is the identity); the import time
with and without the numeric check.

Usage::

    python bench/import_zoo.py --source torchvision --out /tmp/tv.json
    python bench/import_zoo.py --source timm --out /tmp/timm.json [--per-family 6 --side 128]
    python bench/import_zoo.py --report /tmp/tv.json /tmp/timm.json   # markdown tables
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: timm's CNN families named by issue 18, as name patterns.
TIMM_FAMILIES = {
    "ResNet-D": r"^resnet\d+d$", "SE-ResNeXt": r"^seresnext", "EfficientNet": r"^(tf_)?efficientnet_", 
    "EfficientNet-Lite": r"^(tf_)?efficientnet_lite", "MobileNetV2": r"^mobilenetv2", "MobileNetV3": r"^(tf_)?mobilenetv3",
    "MobileNetV4": r"^mobilenetv4_conv", "MNASNet": r"mnasnet", "FBNet": r"^fbnet", "LCNet": r"^lcnet",
    "TinyNet": r"^tinynet", "MixNet": r"^(tf_)?mixnet", "GhostNet": r"^ghostnet", "RexNet": r"^rexnet",
    "RegNetY": r"^regnety", "RegNetZ": r"^regnetz", "ConvNeXt": r"^convnext(v2)?_", "DenseNet": r"^densenet",
    "DPN": r"^dpn", "CSP/Darknet": r"^(cs3|cspdark|cspres|darknet)", "VoVNet": r"vovnet", "Res2Net": r"^res2ne",
    "RepVGG": r"^repvgg", "MobileOne": r"^mobileone", "HGNet": r"^hgnet", "DLA": r"^dla", "Inception": r"^inception_v",
    "Xception": r"xception",
}  # fmt: skip
TORCHVISION_NOT_CNN = re.compile(r"^(vit_|swin_|maxvit)")
#: The largest input side of a timm model in the census (``--side``).
SIDE = 224


def models(source: str) -> list[tuple[str, str]]:
    from budgetnet.pytorch.importer import import_torchvision

    tv = import_torchvision()
    if source == "torchvision":
        names = tv.models.list_models(module=tv.models)
        return [("torchvision", name) for name in names if not TORCHVISION_NOT_CNN.match(name)]
    import timm

    found = []
    for name in timm.list_models():
        family = next((family for family, pattern in TIMM_FAMILIES.items() if re.search(pattern, name)), None)
        if family is not None:
            found.append((family, name))
    return found


def _randomise(model) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=generator) - 0.5)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=generator) - 0.5)
            elif "Norm" in type(m).__name__ or type(m).__name__ == "LearnableAffineBlock":
                # layer, group, response and RMS norms and HGNetV2's affine start as the identity
                # (ConvNeXt V2's response norm at zero): move them off it
                for parameter in m.parameters(recurse=False):
                    parameter.copy_(torch.rand(parameter.shape, generator=generator) + 0.5)


def one(family: str, name: str, queue, side: int = 224) -> None:
    global SIDE
    SIDE = side
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import budgetnet
    from budgetnet.errors import BudgetNetError
    from budgetnet.pytorch.importer import import_torchvision

    tv = import_torchvision()
    row = {"family": family, "model": name}
    try:
        if family == "torchvision":
            model = tv.models.get_model(name)
            shape = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
        else:
            import timm

            model = timm.create_model(name)
            channels, height, width = model.pretrained_cfg.get("input_size", (3, 224, 224))
            shape = (channels, min(height, SIDE), min(width, SIDE))  # at most --side px: the census's time
        model.eval()
        _randomise(model)
        row["input"] = "x".join(map(str, shape))
        start = time.perf_counter()
        arch = budgetnet.Arch.from_module(model, shape, verify=False)
        row["import_s"] = time.perf_counter() - start
        start = time.perf_counter()
        arch = budgetnet.Arch.from_module(model, shape)
        row["import_verified_s"] = time.perf_counter() - start
        row["accepted"] = True
        row["conv_macs"] = budgetnet.conv_macs(arch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fvcore.nn import FlopCountAnalysis
        x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(1))
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        counts = analysis.by_operator()
        # fvcore's conv count plus its Linear count beyond budgetnet's fc layers (ConvNeXt's
        # pointwise Linear layers are 1x1 convs here; DLA's and DPN's classifier is a 1x1 conv
        # that budgetnet counts as the fc it is). fvcore's trace drops a conv whose output
        # nothing reads, as the importer does (the projections timm's DLA computes and drops).
        row["fvcore_conv"] = counts.get("conv", 0)
        row["fvcore_linear_beyond_fc"] = counts.get("linear", 0) - budgetnet.complexity(arch).fc_macs
        row["eqn1_equal"] = budgetnet.conv_macs(arch) == row["fvcore_conv"] + row["fvcore_linear_beyond_fc"]
        built = budgetnet.build(arch, weights_from=model).eval()
        with torch.no_grad():
            reference, ours = model(x), built(x)
        row["logits_rel_diff"] = float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
    except BudgetNetError as error:
        row["accepted"] = False
        row["reason"] = str(error).split("; supported:")[0][:300]
    except Exception as error:  # the model itself (timm version quirks), reported as such
        row["accepted"] = False
        row["reason"] = f"not a budgetnet error: {type(error).__name__}: {str(error)[:200]}"
    queue.put(row)


def run(source: str, out: Path, limit_s: float, only: str | None, per_family: int | None = None) -> None:
    rows = []
    todo = [item for item in models(source) if only is None or re.search(only, item[1])]
    if per_family:  # an even spread over each family's models (the first, the last and between)
        spread = []
        for family in dict.fromkeys(family for family, _ in todo):
            members = [item for item in todo if item[0] == family]
            step = max(len(members) / per_family, 1)
            spread += [members[int(i * step)] for i in range(min(per_family, len(members)))]
        todo = spread
    context = multiprocessing.get_context("spawn")
    for index, (family, name) in enumerate(todo, start=1):
        queue = context.Queue()
        process = context.Process(target=one, args=(family, name, queue, SIDE))
        start = time.perf_counter()
        process.start()
        process.join(limit_s)
        if process.is_alive():
            process.kill()
            row = {"family": family, "model": name, "accepted": False, "reason": f"time limit {limit_s:g} s"}
        else:
            row = queue.get() if not queue.empty() else {"family": family, "model": name, "accepted": False,
                                                        "reason": f"process died (exit {process.exitcode})"}  # fmt: skip
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        status = "ok " if row["accepted"] else "NO "
        print(f"[{index}/{len(todo)}] {status} {name}: {row.get('reason', '')[:150]}", flush=True)
        out.write_text(json.dumps(rows, indent=1))


def report(paths: list[Path]) -> None:
    for path in paths:
        rows = json.loads(path.read_text())
        families: dict[str, list] = {}
        for row in rows:
            family = re.sub(r"[\d_].*", "", row["model"]) if row["family"] == "torchvision" else row["family"]
            families.setdefault(family, []).append(row)
        total = sum(row["accepted"] for row in rows)
        print(f"\n{path.name}: {total} of {len(rows)} import\n")
        print("| family | imported | Eqn. (1) = fvcore | max logits rel. diff | import s (checked) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for family, members in sorted(families.items()):
            ok = [row for row in members if row["accepted"]]
            equal = sum(bool(row.get("eqn1_equal")) for row in ok)
            diff = max((row.get("logits_rel_diff", 0) for row in ok), default=0)
            times = sorted(row.get("import_verified_s", 0) for row in ok)
            median = times[len(times) // 2] if times else 0
            print(f"| {family} | {len(ok)}/{len(members)} | {equal}/{len(ok)} | {diff:.1e} | {median:.2f} |")
        reasons: dict[str, list] = {}
        for row in rows:
            if not row["accepted"]:
                key = re.sub(r"'[^']*'|\d+", "_", row["reason"])[:110]
                reasons.setdefault(key, []).append(row["model"])
        print("\nrefusals by reason:\n")
        for key, names in sorted(reasons.items(), key=lambda item: -len(item[1])):
            print(f"- {len(names)}: {key} (e.g. {', '.join(names[:3])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("torchvision", "timm"), help="which models to import")
    parser.add_argument("--out", type=Path, help="JSON file of the rows (written after each model)")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per model (default 120)")
    parser.add_argument("--only", help="a regular expression: only the models whose name matches")
    parser.add_argument("--per-family", type=int, help="timm: at most this many models of each family, spread evenly")
    parser.add_argument("--side", type=int, default=224, help="timm: the largest input side (default 224)")
    parser.add_argument("--report", nargs="+", type=Path, help="print markdown tables of these JSON files")
    args = parser.parse_args()
    if args.report:
        report(args.report)
    else:
        global SIDE
        SIDE = args.side
        run(args.source, args.out, args.limit, args.only, args.per_family)


if __name__ == "__main__":
    main()
