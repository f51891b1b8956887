"""Dataset adapters: each turns a dataset's own on-disk layout into AXR Samples (see data_cards/)."""
