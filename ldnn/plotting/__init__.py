"""One module per figure; functions take arrays and tables, never paths to read."""
