"""One module per `fairmed` subcommand; each parses options and calls the library."""
