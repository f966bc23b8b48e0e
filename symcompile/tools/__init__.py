"""What users run: `symcompile.compile` (compile, write, load, bind), model files and
the command line."""
