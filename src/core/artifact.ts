export interface ArtifactFile {
  name: string;
  size: number;
  sha256: string;
}

/** A stored backup as the catalog records it: where it lives and the size and SHA-256 of each file. */
export interface Artifact {
  storeUrl: string;
  prefix: string;
  manifest: ArtifactFile;
  files: ArtifactFile[];
}
