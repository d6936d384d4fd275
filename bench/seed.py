"""`python -m bench.seed --drivers N --riders M --out FILE`: benchmark accounts.

Run by the benchmark against its own stack's database (same environment as
the stack's processes). Accounts are written straight into the database and
their access tokens minted with the stack's SECRET_KEY: signing up thousands
of users through the API would mostly measure password hashing, which is not
what the benchmark is about. Everything after this (presence, trips, sockets)
goes through the public protocol. The token file is written 0600 and deleted
with the benchmark's working directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import django

from bench.load import Accounts
from bench.stack import ROOT

if TYPE_CHECKING:
    from bench.stack import Stack

BATCH = 1000


def seed_accounts(stack: Stack, drivers: int, riders: int) -> Accounts:
    """Run this module against `stack`'s database, as its processes see it."""
    path = stack.work_dir / "accounts.json"
    subprocess.run(  # noqa: S603 - this interpreter, this package
        [sys.executable, "-m", "bench.seed", "--drivers", str(drivers), "--riders", str(riders),
         "--out", str(path)],
        cwd=ROOT, env=stack.base_env, check=True, stdin=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip
    try:
        return Accounts.load(path)
    finally:
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, required=True)
    parser.add_argument("--riders", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taxi.settings")
    django.setup()
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import AccessToken

    from trips.auth import TOKEN_CLAIMS
    from trips.models import User

    password = make_password(None)  # unusable: these accounts never log in
    wanted = [("driver", f"benchdriver{n}@bench.local") for n in range(args.drivers)]
    wanted += [("rider", f"benchrider{n}@bench.local") for n in range(args.riders)]
    existing = set(
        User.objects.filter(username__endswith="@bench.local").values_list("username", flat=True)
    )
    new = [
        User(
            username=username,
            first_name=group.title(),
            last_name="Bench",
            group=group,
            password=password,
        )
        for group, username in wanted
        if username not in existing
    ]
    User.objects.bulk_create(new, batch_size=BATCH)
    users = {u.username: u for u in User.objects.filter(username__endswith="@bench.local")}

    def token(user: User) -> str:
        access = AccessToken.for_user(user)
        access[api_settings.USER_ID_CLAIM] = user.pk
        for claim in TOKEN_CLAIMS:
            access[claim] = getattr(user, claim)
        return str(access)

    accounts = {"driver": [], "rider": []}
    for group, username in wanted:
        user = users[username]
        accounts[group].append({"id": user.pk, "username": username, "access": token(user)})
    args.out.touch(mode=0o600)
    args.out.write_text(json.dumps(accounts))


if __name__ == "__main__":
    main()
