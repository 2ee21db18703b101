// @clip/testkit: the real parts tests run against — a registry, fixture images written as OCI
// layouts, tar writers, a fault-injecting proxy, skopeo/umoci wrappers, tree comparison.
export { archiveContents } from './archive-contents.js';
export { buildDebianImage, testkitCacheDir, type DebianImage, type DebianImageOptions } from './debian-image.js';
export { runDemo } from './demo.js';
export {
  FAULT_KINDS,
  startFaultProxy,
  type FaultKind,
  type FaultProxy,
  type FaultProxyOptions,
  type FaultProxyStats,
  type FaultRates,
  type ProxiedRequest,
  type ScriptedFault,
} from './fault-proxy.js';
export { buildFixture, FIXTURE_NAMES, FIXTURES, type FixtureName, type FixtureSpec } from './fixtures.js';
export {
  archiveLayout,
  blobBytes,
  buildLayout,
  filesLayer,
  type BuiltImage,
  type BuiltLayer,
  type BuiltLayout,
  type LayoutSpec,
  type PlatformImageSpec,
} from './layout.js';
export type { EntrySpec, LayerSpec } from './layer-spec.js';
export { generateContent, type FileContent, type GeneratedContent } from './content.js';
export { writeRawLayout, type RawLayout } from './raw-layout.js';
export { chunked, tar, type RawMember } from './raw-tar.js';
export { type RangeServer, startRangeServer } from './range-server.js';
export { childExit, type ChildExit } from './child-exit.js';
export { writeDockerConfig } from './docker-config.js';
export { type MountedPoint, mountsUnder } from './mounts.js';
export { readTree } from './read-tree.js';
export { freePort, htpasswdLine, startRegistry, type RegistryOptions, type RunningRegistry } from './registry.js';
export { startTokenServer, type TokenServer } from './token-server.js';
export { runTool, skopeoCopy, skopeoInspect, skopeoInspectRaw, umociUnpack } from './tools.js';
export { diffTrees, type Tree, type TreeNode } from './tree.js';
export { encodeTar, type TarEntrySpec } from './tar-writer.js';
export { plainLayer } from './plain-layer.js';
