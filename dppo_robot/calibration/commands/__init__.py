"""`dppo-robot calibrate intrinsics | hand-eye | verify`: one module per subcommand (add_arguments / run)."""
