#!/usr/bin/env python
"""Reproduce the MedMNIST active-learning study.

    python main.py --method random --dataset organamnist

runs the study's protocol (the ``paper`` preset: ResNet-18, 50 epochs a
cycle, 10 cycles, 5 trials) and writes results under ``runs/``. It takes the
same options as ``skal run``; ``python main.py --help`` lists them.
"""

import sys

from skal.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main(prog="main.py"))
