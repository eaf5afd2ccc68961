"""Create users and admins from the command line.

    python -m services.auth.cli create-user EMAIL [--admin]     # password from VID2MP3_PASSWORD or a prompt
    python -m services.auth.cli set-admin EMAIL [--revoke]
    python -m services.auth.cli new-signing-key     # JWT_PRIVATE_KEY and its public key, one line each
                                                    # (env-file form: PEM with literal \\n), for a rotation
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from . import accounts, db, tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vid2mp3-auth-admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-user", help="create a user (an admin with --admin)")
    create.add_argument("email")
    create.add_argument("--admin", action="store_true")
    admin = sub.add_parser("set-admin", help="grant (or with --revoke take away) the admin role")
    admin.add_argument("email")
    admin.add_argument("--revoke", action="store_true")
    sub.add_parser("new-signing-key", help="print a new Ed25519 key pair as secrets.env lines (README: rotation)")
    args = parser.parse_args(argv)
    if args.command == "new-signing-key":
        print(tokens.new_key_lines())
        return 0
    try:
        if args.command == "create-user":
            password = os.environ.get("VID2MP3_PASSWORD") or getpass.getpass("password: ")
            user = accounts.register(args.email, password, is_admin=args.admin)
            print(f"created user {user['id']} {user['email']}{' (admin)' if args.admin else ''}")
        else:
            email = accounts.login_email(args.email)  # also finds accounts stored before the email check
            if not db.set_admin(email, not args.revoke):
                print(f"no user {email}", file=sys.stderr)
                return 1
            print(f"{email}: admin {'revoked' if args.revoke else 'granted'}")
    except accounts.InvalidAccount as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except db.DuplicateEmail:
        print("error: an account with this email exists", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
