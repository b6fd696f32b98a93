"""rvos_eval: J&F evaluation exact to the official code, per benchmark."""
