"""What the stand-in does not do fails loudly, naming the call."""


class NotEmulatedError(NotImplementedError):
    def __init__(self, call: str, why: str = "") -> None:
        detail = f": {why}" if why else ""
        super().__init__(
            f"{call} is not emulated by musicpipe's Glue ETL library on plain Spark{detail} "
            "(docs/glue-emulator.md lists what is; run the job in the Glue image for the rest)"
        )


def not_emulated(call: str, why: str = "") -> NotEmulatedError:
    return NotEmulatedError(call, why)
