"""Two apps that claim the same deployment id and version with different handlers.

    python -m conflictapp first|second ADMIN_ADDR

`second` must be refused (FAILED_PRECONDITION) and exit non-zero, leaving `first` registered.
The version is pinned (App.deployment_version is normally a hash of the handlers, so only a
buggy or hand-rolled deployment can collide; the runtime must still refuse it whole).
"""

from __future__ import annotations

import sys

from endure.sdk import App, Context, RegistrationError, Service


class PinnedApp(App):
    def deployment_version(self) -> str:
        return "v1"


first_svc = Service("e2econf")


@first_svc.handler()
async def h1(ctx: Context) -> str:
    return "h1"


second_svc = Service("e2econf")


@second_svc.handler()
async def h2(ctx: Context, x: int) -> int:
    return x


extra = Service("e2econf_extra")


@extra.handler()
async def h3(ctx: Context) -> str:
    return "h3"


first = PinnedApp([first_svc])
second = PinnedApp([second_svc, extra])


def main() -> int:
    from endure.sdk.worker import run_worker

    which, admin = sys.argv[1], sys.argv[2]
    app = first if which == "first" else second
    try:
        run_worker(app, admin, worker_name=f"conflict-{which}", deployment_id="conflict-dep")
    except RegistrationError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
