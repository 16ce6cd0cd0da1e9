"""One module per ``mi-bench`` subcommand: option parsing only, the work lives in the stages."""
