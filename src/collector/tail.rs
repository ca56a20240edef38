//! Following a metrics file while a trial writes it.
//!
//! [`FileTail`] remembers how far it has read and hands back only complete new lines, so a
//! poll that lands in the middle of a line waits for the rest of it. When the trial ends,
//! [`FileTail::finish`] also returns a last line that has no newline. A file that shrinks
//! (rewritten from scratch) is read again from its start.

use std::io::SeekFrom;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::MAX_LINE_BYTES;

/// Most bytes read from the file in one poll, so a huge file is digested in slices.
const READ_CHUNK: u64 = 1 << 20;

/// Reads new lines of a growing file.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl FileTail {
    /// Follows `path`, which need not exist yet.
    pub fn new(path: PathBuf) -> FileTail {
        FileTail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The followed path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Returns the complete lines written since the last call. A missing file gives none.
    pub async fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata().await?.len();
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        let mut lines = Vec::new();
        while self.offset < len {
            file.seek(SeekFrom::Start(self.offset)).await?;
            let mut chunk = Vec::new();
            let read = (&mut file)
                .take(READ_CHUNK.min(len - self.offset))
                .read_to_end(&mut chunk)
                .await?;
            if read == 0 {
                break;
            }
            self.offset += read as u64;
            for piece in chunk.split_inclusive(|b| *b == b'\n') {
                let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
                let complete = piece.ends_with(b"\n");
                self.partial
                    .extend_from_slice(&piece[..piece.len().min(room)]);
                if complete {
                    lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                    self.partial.clear();
                }
            }
        }
        Ok(lines)
    }

    /// Returns what is left, including a last line without a newline.
    pub async fn finish(&mut self) -> std::io::Result<Vec<String>> {
        let mut lines = self.poll().await?;
        if !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_back_complete_lines_only_until_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metrics.log");
        let mut tail = FileTail::new(path.clone());
        assert!(tail.poll().await.expect("poll").is_empty());
        std::fs::write(&path, "loss=1\nloss=").expect("write");
        assert_eq!(tail.poll().await.expect("poll"), vec!["loss=1\n"]);
        std::fs::write(&path, "loss=1\nloss=0.5\nacc=").expect("write");
        assert_eq!(tail.poll().await.expect("poll"), vec!["loss=0.5\n"]);
        assert_eq!(tail.finish().await.expect("finish"), vec!["acc="]);
    }

    #[tokio::test]
    async fn a_truncated_file_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metrics.log");
        let mut tail = FileTail::new(path.clone());
        std::fs::write(&path, "loss=1\nloss=2\n").expect("write");
        assert_eq!(tail.poll().await.expect("poll").len(), 2);
        std::fs::write(&path, "loss=3\n").expect("write");
        assert_eq!(tail.poll().await.expect("poll"), vec!["loss=3\n"]);
    }
}
