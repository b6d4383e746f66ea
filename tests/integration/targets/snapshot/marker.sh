# shellcheck shell=bash
# Write or read the file /marker in a stopped container's rootfs, from the host:
#   bash marker.sh write|read KIND LXC_PATH CONTAINER [TEXT] [MOUNTPOINT]
# KIND dir/btrfs: LXC_PATH/CONTAINER/rootfs; overlay: the upper layer LXC_PATH/CONTAINER/overlay/delta;
# loop: the image LXC_PATH/CONTAINER/rootdev, mounted on MOUNTPOINT for the time of the access.
set -eu
op=$1 kind=$2 path=$3 ct=$4 text=${5:-} mnt=${6:-}
case $kind in
    dir|btrfs) root=$path/$ct/rootfs ;;
    overlay) root=$path/$ct/overlay/delta ;;
    loop)
        mkdir -p "$mnt"
        mount -o loop "$path/$ct/rootdev" "$mnt"
        trap 'umount "$mnt"' EXIT
        root=$mnt ;;
    *) echo "unknown kind $kind" >&2; exit 2 ;;
esac
case $op in
    write) printf '%s\n' "$text" > "$root/marker" ;;
    read) cat "$root/marker" ;;
    *) echo "unknown op $op" >&2; exit 2 ;;
esac
