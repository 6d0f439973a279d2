"""The value grammars every input shares: booleans, ports and signals.

One grammar each, for annotations, the operator's and the sidecar's
environment, the configuration file and lint alike, so ``t`` cannot mean
true in one place and false in another. Standard library only.
"""

from __future__ import annotations

from typing import Final

# Linux signal numbers (pods run Linux whatever the host running `quiesce plan` is).
# fmt: off
SIGNALS: Final[dict[str, int]] = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "PWR": 30, "SYS": 31,
}
# fmt: on
#: Signals that cannot stop an app gracefully: KILL is what the grace period avoids,
#: STOP/TSTP/TTIN/TTOU freeze the process until SIGKILL.
UNGRACEFUL_SIGNALS: Final = frozenset({9, 19, 20, 21, 22})
MAX_SIGNAL: Final = 64  # SIGRTMAX on Linux

#: Go's strconv.ParseBool plus yes/no/on/off, compared case-insensitively.
BOOL_TRUE: Final = frozenset({"1", "t", "true", "y", "yes", "on"})
BOOL_FALSE: Final = frozenset({"0", "f", "false", "n", "no", "off"})
BOOL_EXPECTED: Final = "a boolean: true/false, yes/no, on/off, 1/0, t/f or y/n"
PORT_EXPECTED: Final = "a port number from 1 to 65535"


def parse_bool(value: str) -> bool:
    """Booleans as Kubernetes users write them; raises ValueError otherwise."""
    lowered = value.strip().lower()
    if lowered in BOOL_TRUE:
        return True
    if lowered in BOOL_FALSE:
        return False
    raise ValueError(value)


def parse_port(value: str) -> int:
    """``8080`` -> 8080; raises ValueError for anything but 1..65535 in ASCII digits."""
    text = value.strip()
    if text.isdigit() and text.isascii() and len(text) <= 5 and 1 <= int(text) <= 65535:
        return int(text)
    raise ValueError(value)


def parse_signal(value: str) -> int:
    """``SIGQUIT``, ``QUIT``, ``quit`` or ``3`` -> 3; raises ValueError otherwise."""
    text = value.strip()
    if text.isdigit() and text.isascii() and len(text) <= 3:
        number = int(text)
        if 1 <= number <= MAX_SIGNAL:
            return number
        raise ValueError(value)
    name = text.upper().removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    raise ValueError(value)


def signal_name(number: int) -> str:
    """3 -> ``SIGQUIT``; a number without a name -> ``signal 40``."""
    for name, value in SIGNALS.items():
        if value == number:
            return "SIG" + name
    return f"signal {number}"
