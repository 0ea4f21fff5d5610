/**
 * The root CA's rotation, what the managers compute from the store (the store's side is
 * store/root-rotation.ts):
 *
 *   signingCAOf     which key signs node certificates now: the new root's during a rotation,
 *                   with the cross-signed certificate as the chain, so a peer still trusting only
 *                   the old root accepts them (leaf → cross-signed → old root)
 *   trustBundleOf   the roots every node trusts: both during a rotation, the one root otherwise
 *   newRotation     a new root and its cross-signing by the current one, ready for the store
 *   issuerKeyOf     which root's key signed a node's certificate (the convergence test)
 */
import {
  certPemFromDer,
  createRootCA,
  crossSignRoot,
  newId,
  pemDecodeAll,
  verifyIssuedBy,
  type Random,
  type SigningCA,
} from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { rootCertLifetimeMs } from '../../limits.ts';
import {
  fromBase64,
  rootKeyOf,
  toBase64,
  type ClusterRecord,
  type RootRotation,
} from '../store/index.ts';

/** The CA that signs node certificates now; its `intermediatePem` is set during a rotation. */
export function signingCAOf(cluster: ClusterRecord): SigningCA {
  const rotation = cluster.rootRotation;
  if (!rotation) return { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey };
  return {
    certPem: rotation.caCertPem,
    keyPkcs8: fromBase64(rotation.caKey),
    intermediatePem: rotation.crossSignedPem,
  };
}

/** The roots a node trusts now (PEM, the current root first). */
export function trustBundleOf(cluster: ClusterRecord): string {
  const rotation = cluster.rootRotation;
  return rotation ? cluster.caCertPem + rotation.caCertPem : cluster.caCertPem;
}

/** A new root CA and its certificate cross-signed by the cluster's current root. */
export async function newRotation(
  cluster: ClusterRecord,
  options: { readonly now: Date; readonly random: Random },
): Promise<RootRotation> {
  const root = await createRootCA({ now: options.now });
  try {
    const crossSignedPem = await crossSignRoot(
      { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
      root.certPem,
      // Capped at the old root's end: the cross-signed certificate serves only while both are trusted.
      { now: options.now, lifetimeMs: rootCertLifetimeMs },
    );
    return {
      id: newId(options.random),
      startedAt: options.now.toISOString(),
      caCertPem: root.certPem,
      caKey: toBase64(root.keyPkcs8),
      crossSignedPem,
      issuerKey: rootKeyOf(root.certPem),
    };
  } finally {
    root.keyPkcs8.fill(0); // the store's copy is the one kept (best effort under a GC)
  }
}

/** The first certificate of a PEM bundle (a node's certificate comes with its chain during a rotation). */
export function leafPem(pem: string): string {
  const [leaf] = pemDecodeAll(pem, 'CERTIFICATE');
  if (leaf === undefined) throw new SecretdError('invalid', 'Invalid PEM: no CERTIFICATE block');
  return certPemFromDer(leaf);
}

/** The certificates after the first of a PEM bundle (its chain), as one PEM string ('' for none). */
export function chainPemOf(pem: string): string {
  return pemDecodeAll(pem, 'CERTIFICATE')
    .slice(1)
    .map((der) => certPemFromDer(der))
    .join('');
}

/**
 * The key (base64 SPKI) of the cluster root that signed `certPem` (a leaf, or a leaf and its
 * chain): the rotation's new root or the current root; null when neither did.
 */
export async function issuerKeyOf(certPem: string, cluster: ClusterRecord): Promise<string | null> {
  const leaf = leafPem(certPem);
  const roots = cluster.rootRotation
    ? [cluster.rootRotation.caCertPem, cluster.caCertPem]
    : [cluster.caCertPem];
  for (const root of roots) if (await verifyIssuedBy(leaf, root)) return rootKeyOf(root);
  return null;
}

/** `issuerKeyOf` for a certificate a connection presented (DER). */
export function issuerKeyOfDer(der: Uint8Array, cluster: ClusterRecord): Promise<string | null> {
  return issuerKeyOf(certPemFromDer(der), cluster);
}

/** Whether a PEM holds exactly the same certificates as another (order and line breaks aside). */
export function samePemSet(a: string, b: string): boolean {
  const set = (pem: string): string =>
    pemDecodeAll(pem, 'CERTIFICATE')
      .map((der) => toBase64(der))
      .sort()
      .join(',');
  return set(a) === set(b);
}
