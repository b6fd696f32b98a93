"""Training of the RVOS models (losses, data, engine); depends on rvos_nn and rvos_core only and
finds the models through their ModelEntry (``rvos_nn.training``)."""
