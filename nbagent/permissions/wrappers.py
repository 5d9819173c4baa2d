"""Programs that run another program given on their command line (``nice rm x``, ``timeout 5 ls``).

Each wrapper lists its options (the ``options.py`` table language) and how many of its own operands
come before the command it runs. The analysis finds the command after them and analyses it like any
other; an option the table does not know means the command cannot be found, which the analysis
treats as a program it cannot see. Wrappers with their own logic (``env``, ``xargs``, ``find
-exec``, shells, ``sudo``) are handled in ``bash.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from nbagent.permissions.options import OptionTable


@dataclass(frozen=True)
class Wrapper:
    options: str = ""
    skip: int = 0  # operands before the command (timeout's duration, flock's file, taskset's mask)
    string: str = ""  # the option whose value is a shell command line (su -c, script -c, flock -c)
    writes: tuple[str, ...] = ()  # options whose value is a file it writes (time -o, strace -o)
    changes_root: bool = False  # the command sees another file system (chroot)


WRAPPERS: dict[str, Wrapper] = {
    "nohup": Wrapper(),
    "builtin": Wrapper(),
    "coproc": Wrapper(),
    "unbuffer": Wrapper("-p"),
    "chronic": Wrapper("-e -v"),
    "caffeinate": Wrapper("-d -i -m -s -u -t="),
    "setsid": Wrapper("-c -f -w --ctty --fork --wait"),
    "nice": Wrapper("-n= --adjustment="),
    "ionice": Wrapper("-c= -n= -t --class= --classdata= --ignore"),
    "stdbuf": Wrapper("-i= -o= -e= --input= --output= --error="),
    "timeout": Wrapper("-s= -k= -v --signal= --kill-after= --foreground --preserve-status --verbose", skip=1),
    "time": Wrapper(
        "-p -v -q -a -f= -o= --portability --verbose --quiet --append --format= --output=",
        writes=("-o", "--output"),
    ),
    "exec": Wrapper("-a= -c -l"),
    "command": Wrapper("-p"),
    "taskset": Wrapper("-a -c -p --all-tasks --cpu-list", skip=1),
    "chrt": Wrapper(
        "-a -b -d -D -e -f -i -o -p -r -R -T= -P= -v --all-tasks --batch --deadline --fifo --idle"
        " --other --rr --reset-on-fork --sched-runtime= --sched-period= --sched-deadline --verbose",
        skip=1,
    ),
    "flock": Wrapper(
        "-s -e -u -n -w= -o -E= -F -c= --shared --exclusive --unlock --nonblock --timeout="
        " --close --conflict-exit-code= --no-fork --command=",
        skip=1,
        string="-c",
    ),
    "xvfb-run": Wrapper(
        "-a -e= -f= -n= -l -p= -s= -w= --auto-servernum --error-file= --auth-file="
        " --server-num= --listen-tcp --xauth-protocol= --server-args= --wait="
    ),
    "dbus-run-session": Wrapper("--config-file= --dbus-daemon="),
    "faketime": Wrapper("-f -m -p= --exclude-monotonic", skip=1),
    "torsocks": Wrapper("-i -d -q --isolate --debug --quiet"),
    "proxychains": Wrapper("-q -f="),
    "proxychains4": Wrapper("-q -f="),
    "catchsegv": Wrapper(),
    "strace": Wrapper(
        "-f -c -C -q -t -r -T -v -x -y -k -i -n -s= -e= -a= -P= -I= -E="
        " -u= -o= -O= -S= --output= --trace= --signal= --follow-forks --summary-only",
        writes=("-o", "--output"),
    ),
    "ltrace": Wrapper(
        "-f -c -C -i -L -r -S -t -T -n= -s= -e= -a= -A= -o= --output=", writes=("-o", "--output")
    ),
    "chroot": Wrapper("--userspec= --groups= --skip-chdir", skip=1, changes_root=True),
    "unshare": Wrapper(
        "-m -u -i -n -p -U -C -T -f -r -c --mount --uts --ipc --net --pid --user --cgroup --time"
        " --fork --map-root-user --map-current-user --kill-child? --mount-proc? --propagation="
        " --setgroups= --root= --wd= --keep-caps",
        changes_root=True,
    ),
    "su": Wrapper(
        "-l -m -p -s= -g= -G= -c= -P --login --preserve-environment --shell= --group= --command= --pty",
        skip=1,
        string="-c",
    ),
    "runuser": Wrapper(
        "-l -m -p -s= -g= -G= -u= -c= --login --preserve-environment --shell= --group= --user= --command=",
        string="-c",
    ),
    "script": Wrapper(
        "-a -e -f -q -t? -c= -E= -B= -I= -O= -T= --append --command= --return --flush --quiet --timing?",
        string="-c",
    ),
    "sg": Wrapper("-c=", skip=1, string="-c"),
    "pkexec": Wrapper("--user= --disable-internal-agent --keep-cwd"),
}
# The wrapper's long forms of ``string`` options (``--command``) are found by option name.
STRING_LONG = {"-c": ("--command",)}


@cache
def wrapper_table(name: str) -> OptionTable:
    return OptionTable.parse(WRAPPERS[name].options, numeric=name == "nice")
