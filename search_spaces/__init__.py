"""Search spaces: the paper's models (Tables 1-2) and spaces that turn a trial into an Arch.

Each space module registers its space in :data:`search_spaces.base.SPACES`; importing this
package imports them, so :func:`search_spaces.base.get_space` knows every one.
"""

from search_spaces import replacement, residual, small, stage  # noqa: F401  (each registers its space)
