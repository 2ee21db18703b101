// Which image and layer a Prepare is about, from the labels containerd passes down:
// CRI's (containerd.io/snapshot/cri.*, when disable_snapshot_annotations = false) or the
// stargz ones `ctr-remote image rpull` sets. Other remote snapshotters read the same labels.

export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
export const LABEL_CRI_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';
export const LABEL_CRI_LAYER_DIGEST = 'containerd.io/snapshot/cri.layer-digest';
export const LABEL_CRI_MANIFEST_DIGEST = 'containerd.io/snapshot/cri.manifest-digest';
export const LABEL_CRI_IMAGE_LAYERS = 'containerd.io/snapshot/cri.image-layers';
export const LABEL_STARGZ_REFERENCE = 'containerd.io/snapshot/remote/stargz.reference';
export const LABEL_STARGZ_DIGEST = 'containerd.io/snapshot/remote/stargz.digest';
export const LABEL_STARGZ_LAYERS = 'containerd.io/snapshot/remote/stargz.layers';
/** Set by us on remote snapshots: the image manifest whose lazy mount serves them. */
export const LABEL_CLIP_REMOTE = 'containerd.io/snapshot/clip.remote';

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export interface RemoteLayerRequest {
  /** The snapshot name containerd wants (the layer's chain ID). */
  target: string;
  imageRef: string;
  layerDigest: string;
  /** Only CRI sends it. */
  manifestDigest?: string;
  /** This layer and the ones above it, as far as the label size allowed. */
  layers: string[];
}

export type LabelParse =
  | { kind: 'remote'; request: RemoteLayerRequest }
  | { kind: 'none' } // not an unpack request (e.g. a container's rootfs)
  | { kind: 'incomplete'; reason: string };

/** containerd's unpack key (snapshots.UnpackKeyFormat "extract-%s %s"), behind the metadata layer's "<ns>/<n>/" prefix. */
const UNPACK_KEY_RE = /(?:^|\/)extract-\S+ (sha256:[0-9a-f]{64})$/;

/**
 * Reads the remote-layer labels of a Prepare; `none` when it is not a layer unpack at all
 * (a container's root file system). Unpacks without labels (`ctr image pull`) are recognised
 * by their key.
 */
export function parseLayerLabels(labels: Readonly<Record<string, string>>, key = ''): LabelParse {
  const target = labels[LABEL_SNAPSHOT_REF] || UNPACK_KEY_RE.exec(key)?.[1];
  if (!target) return { kind: 'none' };
  const imageRef = labels[LABEL_CRI_IMAGE_REF] || labels[LABEL_STARGZ_REFERENCE];
  const layerDigest = labels[LABEL_CRI_LAYER_DIGEST] || labels[LABEL_STARGZ_DIGEST];
  if (!imageRef || !layerDigest) {
    return {
      kind: 'incomplete',
      reason: 'no image reference and layer digest labels (cri.image-ref/cri.layer-digest or stargz.reference/stargz.digest)',
    };
  }
  if (!DIGEST_RE.test(layerDigest))
    return { kind: 'incomplete', reason: `layer digest label ${JSON.stringify(layerDigest)} is not a sha256 digest` };
  const manifestDigest = labels[LABEL_CRI_MANIFEST_DIGEST];
  if (manifestDigest !== undefined && !DIGEST_RE.test(manifestDigest)) {
    return { kind: 'incomplete', reason: `manifest digest label ${JSON.stringify(manifestDigest)} is not a sha256 digest` };
  }
  const layerList = labels[LABEL_CRI_IMAGE_LAYERS] || labels[LABEL_STARGZ_LAYERS] || '';
  const layers = layerList.split(',').filter((d) => DIGEST_RE.test(d));
  return {
    kind: 'remote',
    request: { target, imageRef, layerDigest, layers, ...(manifestDigest ? { manifestDigest } : {}) },
  };
}
