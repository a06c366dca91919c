//! Shared code of the command-line programs.
