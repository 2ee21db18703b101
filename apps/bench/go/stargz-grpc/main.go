// Copyright 2026 the clip authors. Licensed under the Apache License, Version 2.0.
//
// stargz-grpc: the benchmark's stand-in for upstream's cmd/containerd-stargz-grpc, built
// offline from Debian's stargz-snapshotter 0.12 sources (GOPATH mode). Upstream's `service`
// package does not build from Debian (its CRI keychain needs k8s.io/cri-api), so this wires
// the packaged filesystem and snapshotter directly and serves them as a containerd proxy
// snapshotter over gRPC. Registries are plain HTTP when loopback (the bench registry), with
// anonymous access.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/snapshots/overlay/overlayutils"
	stargzfs "github.com/containerd/stargz-snapshotter/fs"
	fsconfig "github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/layer"
	"github.com/containerd/stargz-snapshotter/fs/source"
	snbase "github.com/containerd/stargz-snapshotter/snapshot"
	"google.golang.org/grpc"
)

func main() {
	address := flag.String("address", "/run/containerd-stargz-grpc/containerd-stargz-grpc.sock", "unix socket to serve the snapshotter on")
	root := flag.String("root", "/var/lib/containerd-stargz-grpc", "state directory")
	noPrefetch := flag.Bool("no-prefetch", false, "do not prefetch the landmark-marked part of layers at mount")
	noBackground := flag.Bool("no-background-fetch", false, "do not fetch whole layers in the background")
	flag.Parse()
	if err := serve(*address, *root, *noPrefetch, *noBackground); err != nil {
		fmt.Fprintf(os.Stderr, "stargz-grpc: %v\n", err)
		os.Exit(1)
	}
}

// hosts resolves every registry with its own client (a nil Transport makes the fetcher
// dereference nil) and plain HTTP for loopback.
func hosts(spec reference.Spec) ([]docker.RegistryHost, error) {
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	return docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost), docker.WithClient(client))(spec.Hostname())
}

func serve(address, root string, noPrefetch, noBackground bool) error {
	ctx := context.Background()
	snRoot := filepath.Join(root, "snapshotter")
	if err := os.MkdirAll(snRoot, 0o700); err != nil {
		return err
	}
	opaque := layer.OverlayOpaqueTrusted
	if userxattr, err := overlayutils.NeedsUserXAttr(snRoot); err == nil && userxattr {
		opaque = layer.OverlayOpaqueUser
	}
	cfg := fsconfig.Config{NoPrefetch: noPrefetch, NoBackgroundFetch: noBackground, NoPrometheus: true}
	fs, err := stargzfs.NewFilesystem(filepath.Join(root, "stargz"), cfg,
		stargzfs.WithGetSources(source.FromDefaultLabels(hosts)),
		stargzfs.WithOverlayOpaqueType(opaque))
	if err != nil {
		return fmt.Errorf("filesystem: %w", err)
	}
	sn, err := snbase.NewSnapshotter(ctx, snRoot, fs, snbase.AsynchronousRemove)
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return err
	}
	_ = os.Remove(address)
	listener, err := net.Listen("unix", address)
	if err != nil {
		return err
	}
	rpc := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(rpc, snapshotservice.FromSnapshotter(sn))
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		rpc.Stop()
	}()
	fmt.Fprintf(os.Stderr, "stargz-grpc: serving on %s\n", address)
	err = rpc.Serve(listener)
	// Close unmounts the FUSE layers this process mounted.
	if cerr := sn.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
