"""Network partitions for the chaos scenarios: every vigild in a network
namespace of its own, and iptables rules in a node's namespace that drop
its packets to or from its peers.

Why namespaces. On loopback every connection comes from 127.0.0.1, so no
rule can tell node A's connection to B from C's. Here each node has an
address of its own, and a rule in the victim's namespace sees only the
victim's packets.

Layout. enter() re-executes the test under `unshare --net --mount --pid
--fork --kill-child=SIGTERM --mount-proc`, as PID 1 of a PID namespace of
its own, so that everything below lives in namespaces the test created and
dies with it: when the test ends, however (kill -9 included), the kernel
kills every process left in its PID namespace, and the network namespaces
go with the last of them. A SIGTERM to the group (meson's timeout), or to
unshare (passed on), reaches the test, whose finally cleans up. RUN, the
PID of the test before the re-execution, names what the test creates:

  hub namespace: the test and its station threads, vigil-plcsim, vigilctl;
    lo up; a tmpfs on /run/netns (private to the test's mount namespace,
    so the names below are never seen, nor left, on the host);
    bridge vgbr<RUN>, 10.213.0.1/24;
  node K: namespace vigil-<RUN>-n<K>, lo up, veth vgn<K> 10.213.0.1<K>/24,
    its peer vgh<RUN>n<K> a port of the bridge; vigild started through
    `ip netns exec NAME vigild ...`, which execs (the PID is the node's).

A cut is a set of DROP rules (a blackhole: connections hang until their
timeouts, as on a real network; REJECT would tell the sender at once) in
the victim's namespace for every packet to (OUTPUT -d PEER) and/or from
(INPUT -s PEER) each peer's address, every port: raft traffic and the
leader's status questions to its members alike, as a broken switch port
would. The hub's address is never cut: stations, vigilctl and the PLC still
reach the victim. heal() deletes exactly the rules cut() added and returns
how many packets they dropped (the rules' counters), so that a cut which
matched nothing shows. close() heals what is still cut and removes the
veths, the namespaces, the bridge and the tmpfs (the kernel would also
drop all of it when the test's namespaces die).

enter() returns the reason when partitions cannot be made here (not root,
unshare, ip, iptables or mount missing, or the probe in a scratch namespace
failed); the caller reports it as a TAP skip. /run/netns is created if it
is missing (as `ip netns add` would), and left empty."""
import os
import shutil
import subprocess
import sys
import threading

SUBNET = "10.213.0"
HUB_ENV = "VIGIL_NETNS_HUB"
TOOLS = ("unshare", "ip", "iptables", "mount", "umount")
UNSHARE = ["unshare", "--net", "--mount", "--pid", "--fork",
           "--kill-child=SIGTERM", "--mount-proc"]


def run(cmd, timeout=10, check=True):
    """Run CMD (bounded); its CompletedProcess. Raises RuntimeError with
    its stderr if CHECK and it failed."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                                p.stderr.strip()))
    return p


def unavailable():
    """Why partitions cannot be made here, or None."""
    if os.geteuid() != 0:
        return "not root (network namespaces and iptables need root)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return "missing %s" % ", ".join(missing)
    # Everything the lab does, once, in a scratch namespace that dies with
    # the probe.
    probe = ("ip link add vgprobe type bridge && "
             "ip link add vgpa type veth peer name vgpb && "
             "iptables -w -A OUTPUT -d 10.213.0.2 -j DROP && iptables -w -S >/dev/null")
    try:
        p = run(UNSHARE + ["sh", "-c", probe], check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "probe failed: %s" % e
    if p.returncode != 0:
        return "probe failed: %s" % (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
    return None


def inside():
    """True in the namespaces enter() made (as their PID 1)."""
    return bool(os.environ.get(HUB_ENV)) and os.getpid() == 1


def enter():
    """In the test's own namespaces: None. Otherwise re-execute this
    process there (does not return), or return why that cannot be done."""
    if inside():
        return None
    why = unavailable()
    if why:
        return why
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ)
    env[HUB_ENV] = str(os.getpid())  # RUN
    os.execvpe("unshare", UNSHARE + ["--", sys.executable] + sys.argv, env)
    return "exec of unshare failed"  # not reached


class Lab:
    """N nodes' namespaces joined by a bridge, in the hub namespace enter()
    made. Call close() in a finally."""

    def __init__(self, n):
        if not inside():
            raise RuntimeError("Lab outside the test's namespaces (netns.enter())")
        pid = int(os.environ[HUB_ENV])
        self.hub = SUBNET + ".1"
        self.bridge = "vgbr%d" % pid
        self.names = ["vigil-%d-n%d" % (pid, i + 1) for i in range(n)]
        self.veths = ["vgh%dn%d" % (pid, i + 1) for i in range(n)]
        self.hosts = ["%s.%d" % (SUBNET, 11 + i) for i in range(n)]
        self.lock = threading.Lock()
        self.cuts = []        # rules in place: (namespace, [rule args])
        self.made = []        # what close() removes, in reverse order
        try:
            run(["ip", "link", "set", "lo", "up"])
            os.makedirs("/run/netns", exist_ok=True)
            run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "vigil-netns",
                 "/run/netns"])
            self.made.append(("umount", "/run/netns"))
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            self.made.append(("link", self.bridge))
            run(["ip", "addr", "add", self.hub + "/24", "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])
            for i, name in enumerate(self.names):
                run(["ip", "netns", "add", name])
                self.made.append(("netns", name))
                inner = "vgn%d" % (i + 1)
                run(["ip", "link", "add", self.veths[i], "type", "veth", "peer",
                     "name", inner, "netns", name])
                self.made.append(("link", self.veths[i]))
                run(["ip", "link", "set", self.veths[i], "master", self.bridge, "up"])
                run(["ip", "-n", name, "link", "set", "lo", "up"])
                run(["ip", "-n", name, "addr", "add", self.hosts[i] + "/24", "dev", inner])
                run(["ip", "-n", name, "link", "set", inner, "up"])
        except BaseException:
            self.close()
            raise

    def wrap(self, node):
        """The command prefix that starts NODE (vigil_cluster.Node, ids from
        1) in its namespace; ip netns exec execs the command."""
        return ["ip", "netns", "exec", self.names[node.id - 1]]

    def iptables(self, k, args, check=True):
        return run(["ip", "netns", "exec", self.names[k - 1], "iptables", "-w"]
                   + args, check=check)

    def cut(self, k, peers, direction):
        """Drop node K's packets to (DIRECTION "out"), from ("in") or to and
        from ("both") the addresses PEERS; a handle for heal()."""
        rules = []
        for p in peers:
            if direction in ("out", "both"):
                rules.append(["OUTPUT", "-d", p, "-j", "DROP"])
            if direction in ("in", "both"):
                rules.append(["INPUT", "-s", p, "-j", "DROP"])
        with self.lock:
            cut = (k, [])
            self.cuts.append(cut)
            for r in rules:
                self.iptables(k, ["-A"] + r)
                cut[1].append(r)
        return cut

    def dropped(self, k):
        """Packets the DROP rules of node K's namespace dropped so far."""
        total = 0
        for chain in ("INPUT", "OUTPUT"):
            out = self.iptables(k, ["-L", chain, "-v", "-x", "-n"]).stdout
            for line in out.splitlines():
                f = line.split()
                if len(f) > 2 and f[2] == "DROP" and f[0].isdigit():
                    total += int(f[0])
        return total

    def heal(self, cut):
        """Delete the rules of CUT; the packets they dropped."""
        with self.lock:
            if cut not in self.cuts:
                return 0
            k, rules = cut
            n = self.dropped(k)
            for r in reversed(rules):
                self.iptables(k, ["-D"] + r)
            self.cuts.remove(cut)
            return n

    def rules_left(self):
        """The rules (iptables -S) still in any node's namespace, beyond
        the default policies."""
        left = []
        for k in range(1, len(self.names) + 1):
            p = self.iptables(k, ["-S"], check=False)
            left += [l for l in p.stdout.splitlines() if not l.startswith("-P ")]
        return left

    def close(self):
        """Heal every cut and remove what __init__ made; never raises (it
        runs in a finally), returns the errors met."""
        errors = []
        with self.lock:
            cuts = list(self.cuts)
        for c in cuts:
            try:
                self.heal(c)
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))
        for kind, what in reversed(self.made):
            cmd = {"umount": ["umount", what],
                   "link": ["ip", "link", "del", what],
                   "netns": ["ip", "netns", "del", what]}[kind]
            try:
                p = run(cmd, check=False)
                # A veth is gone with its namespace's end: not an error.
                if p.returncode != 0 and kind != "link":
                    errors.append("%s: %s" % (" ".join(cmd), p.stderr.strip()))
            except (OSError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))
        self.made = []
        return errors
