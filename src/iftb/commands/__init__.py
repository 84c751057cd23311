"""The ``iftb-db`` subcommands, one module per area; ``iftb.cli`` assembles them."""
