"""Run many ``adaptcli`` commands in one process (one CUDA start-up for all of them).

    python tests/cuda/batch_cli.py JOBS.json RESULTS.json

JOBS.json: a list of argument lists; RESULTS.json: ``[{"exit_code": int, "output": str}, ...]`` in the
same order (the output's last 3000 characters). Accelerate keeps one device and precision per process,
so every job in one batch must ask for the same ones.
"""

from __future__ import annotations

import json
import sys
import traceback

from typer.testing import CliRunner

from adaptcli.cli import app


def main() -> None:
    jobs = json.loads(open(sys.argv[1]).read())
    results = []
    for args in jobs:
        result = CliRunner().invoke(app, args)
        output = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            output += "".join(traceback.format_exception(result.exception))
        results.append({"exit_code": result.exit_code, "output": output[-3000:]})
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
