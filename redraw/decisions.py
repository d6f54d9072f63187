"""The four decisions a failure can get (``redraw.policy`` decides which; errors carry it)."""

RETRY = "retry"          # transient: back off and try again
DUPLICATE = "duplicate"  # the SessionId was already used: the work is already submitted
TERMINAL = "terminal"    # a retry cannot help: fix the request or the configuration
UNKNOWN = "unknown"      # not recognised: retried once, then treated as terminal
