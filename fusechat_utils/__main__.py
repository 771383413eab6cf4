import sys

from fusechat_utils.cli import main

# Guarded: multiprocessing's spawn re-imports the main module in every child (toy-world training workers).
if __name__ == "__main__":
    sys.exit(main())
