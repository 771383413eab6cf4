import sys

from fusechat_utils.cli import main

sys.exit(main())
