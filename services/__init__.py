"""The five gazeflow stages, one folder each, and the commands that run them."""
