//! Rebuilds the crate when the built front end (`dist/`) changes, so the binary embeds what
//! `npm run build` (in `web/`) last wrote: the embedding macro sees only the files there when it
//! runs.

fn main() {
    println!("cargo:rerun-if-changed=dist");
}
