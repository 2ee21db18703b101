// containerd's snapshotter conformance suite (snapshots/testsuite, from Debian's
// golang-github-containerd-containerd-dev) against `clip snapshotter` over gRPC
// (snapshots/proxy): one fresh snapshotter process per test case. Run: ./run.sh
package conformance

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

func TestClipSnapshotter(t *testing.T) {
	cli := os.Getenv("CLIP_CLI")
	if cli == "" {
		t.Skip("CLIP_CLI (path of apps/cli/dist/main.js) not set")
	}
	testsuite.SnapshotterSuite(t, "clip", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		socket := filepath.Join(root, "clip.sock")
		cmd := exec.Command("node", cli, "snapshotter", "--address", socket, "--root", filepath.Join(root, "clip"), "--state-dir", filepath.Join(root, "mounts"))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		for i := 0; i < 600; i++ {
			if _, err := os.Stat(socket); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Node's HTTP/2 refuses a socket path as :authority, as containerd's own dialer avoids.
		conn, err := grpc.Dial(socket, grpc.WithInsecure(), grpc.WithAuthority("localhost"), grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
		if err != nil {
			cmd.Process.Kill()
			return nil, nil, err
		}
		sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "clip")
		return sn, func() error {
			conn.Close()
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			return nil
		}, nil
	})
}
