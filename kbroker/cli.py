"""Command line entry point (placeholder until the config module lands)."""


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("kbroker: not yet runnable")
