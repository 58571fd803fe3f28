"""Reads the few Dockerfile instructions integration-tests/docker/check.sh needs, and lints it.

usage: dockerfile.py lint DOCKERFILE
       dockerfile.py build DOCKERFILE                 -> the `RUN cargo build ...` command
       dockerfile.py entrypoint DOCKERFILE DATA PORT  -> ENTRYPOINT + CMD, one arg a line
       dockerfile.py healthcheck DOCKERFILE PORT      -> the HEALTHCHECK command for bash -c
"""

import json
import re
import sys

DATA_DIR = "/var/lib/sluice"
PORT = "9092"
# An exact version in the tag: at least major.minor, or a dated Debian snapshot.
PINNED_TAG = re.compile(r"^[a-z0-9./-]+:(\d+\.\d+[\w.-]*|[a-z]+-\d{8}[\w.-]*)(@sha256:[0-9a-f]{64})?$")


def instructions(path):
    """(KEYWORD, text) pairs, continuation lines joined, comments dropped."""
    result, pending = [], ""
    with open(path, encoding="utf-8") as file:
        for line in file:
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            text = pending + stripped
            pending = ""
            keyword, _, rest = text.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def fail(message):
    sys.exit(f"Dockerfile lint: {message}")


def lint(path):
    found = instructions(path)
    stages = [i for i, (keyword, _) in enumerate(found) if keyword == "FROM"]
    if not stages:
        fail("no FROM")
    for keyword, rest in found:
        if keyword == "FROM":
            image = rest.split()[0]
            if not PINNED_TAG.match(image):
                fail(f"base image {image} is not pinned to an exact version")
    final = found[stages[-1]:]
    users = [rest for keyword, rest in final if keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        fail("the final stage does not switch to a non-root USER")
    keywords = {keyword for keyword, _ in final}
    for required in ("HEALTHCHECK", "VOLUME", "EXPOSE", "ENTRYPOINT", "CMD"):
        if required not in keywords:
            fail(f"no {required} in the final stage")
    if not any(keyword == "EXPOSE" and PORT in rest.split() for keyword, rest in final):
        fail(f"port {PORT} is not exposed")
    if any(keyword == "ADD" for keyword, _ in found):
        fail("ADD fetches URLs and unpacks archives implicitly: use COPY")
    print(f"Dockerfile lint: ok ({len(stages)} stages)")


def exec_form(found, keyword):
    values = [rest for k, rest in found if k == keyword]
    if len(values) != 1:
        fail(f"expected one {keyword}, found {len(values)}")
    try:
        value = json.loads(values[0])
    except ValueError:
        fail(f"{keyword} is not in exec (JSON) form")
    return value


def main():
    action, path = sys.argv[1], sys.argv[2]
    found = instructions(path)
    if action == "lint":
        lint(path)
    elif action == "build":
        builds = [rest for k, rest in found if k == "RUN" and rest.startswith("cargo build")]
        if len(builds) != 1:
            fail(f"expected one RUN cargo build, found {len(builds)}")
        print(builds[0])
    elif action == "entrypoint":
        data_dir, port = sys.argv[3], sys.argv[4]
        args = exec_form(found, "ENTRYPOINT") + exec_form(found, "CMD")
        for arg in args:
            arg = arg.replace(DATA_DIR, data_dir).replace("0.0.0.0:" + PORT, "127.0.0.1:" + port)
            print(arg.replace(":" + PORT, ":" + port))
    elif action == "healthcheck":
        port = sys.argv[3]
        checks = [rest for k, rest in found if k == "HEALTHCHECK"]
        if len(checks) != 1:
            fail("expected one HEALTHCHECK")
        command = json.loads(checks[0].split(" CMD ", 1)[1])
        if command[:2] != ["bash", "-c"]:
            fail("HEALTHCHECK is not a `bash -c` command")
        print(command[2].replace("/" + PORT, "/" + port))
    else:
        fail(f"unknown action {action}")


if __name__ == "__main__":
    main()
