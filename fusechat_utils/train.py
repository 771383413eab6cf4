"""Entry point of each rank of a launched 05_sft / 06_dpo run (train_launch.launch starts it through
`accelerate launch -m fusechat_utils.train --step 05_sft --config launch_config.json`).

The steps themselves are train_sft.py and train_dpo.py, their shared code train_common.py.
"""

from __future__ import annotations

import argparse
import json

from fusechat_utils.train_dpo import DPOStepConfig, run_dpo
from fusechat_utils.train_sft import SFTStepConfig, run_sft

STEPS = {"05_sft": (SFTStepConfig, run_sft), "06_dpo": (DPOStepConfig, run_dpo)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one rank of a launched 05_sft / 06_dpo run")
    parser.add_argument("--step", choices=sorted(STEPS), required=True)
    parser.add_argument("--config", required=True, help="JSON of the step config (launch_config.json)")
    ns = parser.parse_args(argv)
    cls, run = STEPS[ns.step]
    with open(ns.config) as fh:
        run(cls.from_params(json.load(fh), source=ns.config))


if __name__ == "__main__":
    main()
