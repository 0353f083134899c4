"""`emissions`, the command-line edge: parse arguments, call the service layer, print."""
