"""fusechat_utils: the helper package behind the FuseChat-3.0 reproduction notebooks."""

__version__ = "0.1.0"
