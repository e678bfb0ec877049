#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs sealpod on a node: the shim and CLI binaries, the guest image,
# a default runtime configuration, and the runtime block in containerd's
# config.toml (between "BEGIN sealpod" / "END sealpod" markers, so running
# it again changes nothing and --uninstall removes exactly what it added).
# The sealpod-deploy DaemonSet runs it with --root=/host; it also runs on
# a node directly. See docs/shim.md.
set -eu

ARTIFACTS=$(dirname "$0")
ROOT=/
PREFIX=/usr/local
CONFIG=
RESTART=none
UNINSTALL=0
WAIT=0
BEGIN_MARK='# BEGIN sealpod (managed by sealpod install.sh; do not edit)'
END_MARK='# END sealpod'

usage() {
	cat <<EOF
usage: install.sh [--artifacts DIR] [--root DIR] [--prefix DIR]
                  [--containerd-config FILE] [--restart none|systemctl|nsenter]
                  [--uninstall] [--wait]
  --artifacts DIR   where bin/ and guest/ are (default: this script's directory)
  --root DIR        the node's root file system (default /; /host in the DaemonSet)
  --prefix DIR      binaries go to ROOT/PREFIX/bin (default /usr/local)
  --containerd-config FILE
                    containerd's configuration (default ROOT/etc/containerd/config.toml)
  --restart HOW     restart containerd afterwards: none (default), systemctl,
                    or nsenter (systemctl in the host's namespaces, from a pod)
  --uninstall       remove what an install added
  --wait            sleep afterwards (a DaemonSet container must keep running)
EOF
}

die() {
	echo "install.sh: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	--artifacts=*) ARTIFACTS=${1#*=} ;;
	--artifacts) shift; ARTIFACTS=${1:?} ;;
	--root=*) ROOT=${1#*=} ;;
	--root) shift; ROOT=${1:?} ;;
	--prefix=*) PREFIX=${1#*=} ;;
	--prefix) shift; PREFIX=${1:?} ;;
	--containerd-config=*) CONFIG=${1#*=} ;;
	--containerd-config) shift; CONFIG=${1:?} ;;
	--restart=*) RESTART=${1#*=} ;;
	--restart) shift; RESTART=${1:?} ;;
	--uninstall) UNINSTALL=1 ;;
	--wait) WAIT=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument $1" ;;
	esac
	shift
done

case "$RESTART" in
none|systemctl|nsenter) ;;
*) die "--restart must be none, systemctl or nsenter, not \"$RESTART\"" ;;
esac

ROOT=${ROOT%/}
BINDIR=$ROOT$PREFIX/bin
SHAREDIR=$ROOT/usr/share/sealpod
ETCDIR=$ROOT/etc/sealpod
[ -n "$CONFIG" ] || CONFIG=$ROOT/etc/containerd/config.toml

# The runtime block (deploy/containerd-config.toml, without its comment
# header), between markers.
block() {
	echo "$BEGIN_MARK"
	sed -n '/^\[plugins/,$p' "$ARTIFACTS/containerd-config.toml"
	echo "$END_MARK"
}

# config.toml without our block (and without the blank line before it).
strip_block() {
	awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
		$0 == b { skip = 1; held = 0; next }
		skip { if ($0 == e) skip = 0; next }
		held { print ""; held = 0 }
		$0 == "" { held = 1; next }
		{ print }
		END { if (held) print "" }
	' "$1"
}

patch_config() {
	if [ -f "$CONFIG" ]; then
		if grep -q '^[[:space:]]*version[[:space:]]*=[[:space:]]*1' "$CONFIG" ||
		   ! grep -q '^[[:space:]]*version[[:space:]]*=' "$CONFIG"; then
			die "$CONFIG is not a version 2 containerd configuration (add \"version = 2\" and migrate it with \`containerd config migrate\` first)"
		fi
		stripped=$(mktemp)
		strip_block "$CONFIG" > "$stripped"
		if grep -q 'containerd\.runtimes\.sealpod\]' "$stripped"; then
			rm -f "$stripped"
			die "$CONFIG already defines runtimes.sealpod outside the sealpod markers; remove that table or let install.sh manage it"
		fi
	else
		mkdir -p "$(dirname "$CONFIG")"
		stripped=$(mktemp)
		printf 'version = 2\n' > "$stripped"
	fi
	new=$(mktemp "$CONFIG.sealpod.XXXXXX")
	{ cat "$stripped"; echo; block; } > "$new"
	rm -f "$stripped"
	if [ -f "$CONFIG" ] && cmp -s "$new" "$CONFIG"; then
		rm -f "$new"
		echo "install.sh: $CONFIG already has the sealpod runtime"
		return 1
	fi
	if [ -f "$CONFIG" ]; then
		[ -f "$CONFIG.sealpod-orig" ] || cp -p "$CONFIG" "$CONFIG.sealpod-orig"
		chmod --reference="$CONFIG" "$new"
	fi
	mv -f "$new" "$CONFIG"
	echo "install.sh: added the sealpod runtime to $CONFIG"
	return 0
}

unpatch_config() {
	[ -f "$CONFIG" ] || return 1
	grep -qxF "$BEGIN_MARK" "$CONFIG" || return 1
	new=$(mktemp "$CONFIG.sealpod.XXXXXX")
	strip_block "$CONFIG" > "$new"
	chmod --reference="$CONFIG" "$new" 2>/dev/null || true
	mv -f "$new" "$CONFIG"
	rm -f "$CONFIG.sealpod-orig"
	echo "install.sh: removed the sealpod runtime from $CONFIG"
	return 0
}

restart_containerd() {
	case "$RESTART" in
	none) echo "install.sh: restart containerd to use the new runtime" ;;
	systemctl) systemctl restart containerd ;;
	nsenter) nsenter --target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd ;;
	esac
}

install_files() {
	[ -x "$ARTIFACTS/bin/containerd-shim-sealpod-v2" ] ||
		die "$ARTIFACTS/bin/containerd-shim-sealpod-v2 is missing; --artifacts names the directory with bin/ and guest/"
	mkdir -p "$BINDIR" "$SHAREDIR" "$ETCDIR"
	for b in containerd-shim-sealpod-v2 sealpod; do
		[ -f "$ARTIFACTS/bin/$b" ] || continue
		# Through a temporary name: a running shim keeps its old binary.
		cp "$ARTIFACTS/bin/$b" "$BINDIR/.$b.new"
		chmod 0755 "$BINDIR/.$b.new"
		mv -f "$BINDIR/.$b.new" "$BINDIR/$b"
	done
	for f in vmlinuz initrd.img cmdline manifest.json; do
		[ -f "$ARTIFACTS/guest/$f" ] || continue
		cp "$ARTIFACTS/guest/$f" "$SHAREDIR/.$f.new"
		chmod 0644 "$SHAREDIR/.$f.new"
		mv -f "$SHAREDIR/.$f.new" "$SHAREDIR/$f"
	done
	if [ ! -f "$ETCDIR/runtime.json" ]; then
		cmdline=""
		[ -f "$SHAREDIR/cmdline" ] && cmdline=$(tr -d '"\\\n' < "$SHAREDIR/cmdline")
		cat > "$ETCDIR/runtime.json" <<EOF
{
  "backend": "vm",
  "kernel": "/usr/share/sealpod/vmlinuz",
  "initrd": "/usr/share/sealpod/initrd.img",
  "kernel_cmdline": "$cmdline",
  "qemu": "qemu-system-x86_64",
  "accel": "auto",
  "tee": "snp",
  "vcpus": 1,
  "memory_mib": 512,
  "state_dir": "/run/sealpod",
  "image_disk_dir": "/var/lib/sealpod/disks",
  "boot_timeout_s": 120
}
EOF
		echo "install.sh: wrote $ETCDIR/runtime.json (edit tee for nodes without SEV-SNP)"
	fi
}

uninstall_files() {
	rm -f "$BINDIR/containerd-shim-sealpod-v2" "$BINDIR/sealpod"
	for f in vmlinuz initrd.img cmdline manifest.json; do
		rm -f "$SHAREDIR/$f"
	done
	rmdir "$SHAREDIR" 2>/dev/null || true
}

if [ "$UNINSTALL" = 1 ]; then
	if unpatch_config; then restart_containerd; fi
	uninstall_files
	echo "install.sh: sealpod removed ($ETCDIR kept)"
else
	install_files
	if patch_config; then restart_containerd; fi
	echo "install.sh: sealpod installed"
fi

if [ "$WAIT" = 1 ]; then
	while :; do sleep 3600; done
fi
