"""`python -m dppo_robot ...` is the `dppo-robot` command."""

from dppo_robot.cli import main

raise SystemExit(main())
