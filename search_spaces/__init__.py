"""Search spaces: the paper's models (Tables 1-2) and spaces that turn a trial into an Arch."""
