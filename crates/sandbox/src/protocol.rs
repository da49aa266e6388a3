//! Messages between the server and the jail helper over the control socket.
//!
//! The socket is a `SOCK_SEQPACKET` pair, so every `send` is one whole message and no framing is
//! needed. The server sends a [`SetupRequest`] (the [`JailSpec`](crate::JailSpec) and the
//! scratch directory) as JSON; the helper answers, in
//! this order, [`HelperMsg::Cgroup`], [`HelperMsg::Listener`] and [`HelperMsg::UnixListener`]
//! (each carrying a listening socket as `SCM_RIGHTS`) and [`HelperMsg::Ready`] once the runtime was exec'd, or [`HelperMsg::Failed`]
//! at any point. After `Ready` the socket stays open as a liveness signal: when the server
//! closes it, the helper kills the environment. A pre-warmed environment (see
//! [`Start`](crate::Start)) additionally takes one [`ServerMsg::Assign`] (carrying the
//! function's code as a detached mount, and its layers' tree as a second one when it has layers)
//! after `Ready`, answered by [`HelperMsg::Assigned`] or [`HelperMsg::Failed`].

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::Step;

/// Largest message either side sends; the spec is far smaller (Lambda caps environment
/// variables at 4 KB).
pub(crate) const MAX_MESSAGE: usize = 128 * 1024;

/// What the server sends the helper: the spec and the per-server settings that are not part
/// of it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SetupRequest {
    pub(crate) spec: crate::JailSpec,
    /// Directory for the environment's `/tmp` image (see `tmpdisk`).
    pub(crate) scratch_dir: std::path::PathBuf,
}

/// Messages from the server to the helper after `Ready`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum ServerMsg {
    /// Gives a pre-warmed environment to a function; the code's detached mount travels with it,
    /// followed by the layers' (for `/opt`) when `opt` is set.
    Assign {
        memory_mb: u64,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: String,
        #[serde(default)]
        opt: bool,
    },
    /// Asks for a TCP connection to `127.0.0.1:port` inside the environment's network
    /// namespace (a Telemetry API subscriber's listener); answered by [`HelperMsg::Connected`]
    /// with the connected socket, or [`HelperMsg::NotConnected`].
    Connect { port: u16 },
}

/// What the assignment pipe carries to pid 1 or to a runtime template: one JSON object, then
/// end of file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PipeAssignment {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: String,
}

/// Messages from the helper to the server.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum HelperMsg {
    /// The cgroup directories created for the environment (possibly none when degraded).
    Cgroup {
        dirs: Vec<crate::cgroup::EnvDir>,
        warnings: Vec<String>,
    },
    /// The Runtime API listener travels with this message.
    Listener { warnings: Vec<String> },
    /// The Runtime API's abstract Unix listener travels with this message (sent right after
    /// `Listener`).
    UnixListener { warnings: Vec<String> },
    /// The runtime was exec'd; a pidfd of pid 1 travels with this message when the kernel
    /// supports pidfds.
    Ready { warnings: Vec<String> },
    /// The assignment took effect: the code is mounted, the limit set, and the runtime has it
    /// (a deferred environment's runtime was exec'd).
    Assigned { warnings: Vec<String> },
    /// The connection asked for with [`ServerMsg::Connect`] travels with this message.
    Connected,
    /// The connection could not be made (nothing listens there, for one).
    NotConnected { message: String },
    /// A step failed; the helper exits after sending this.
    Failed { step: Step, message: String },
}

/// Sends one message, optionally passing one file descriptor with it.
pub(crate) fn send(sock: BorrowedFd<'_>, payload: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let fds: Vec<RawFd> = fd.into_iter().collect();
    send_fds(sock, payload, &fds)
}

/// Sends one message with up to [`MAX_FDS`] file descriptors, in order.
pub(crate) fn send_fds(sock: BorrowedFd<'_>, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors for one message",
        ));
    }
    if payload.len() > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message of {} bytes exceeds {MAX_MESSAGE}", payload.len()),
        ));
    }
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(fds)]
    };
    let iov = [IoSlice::new(payload)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Serialises and sends a helper message.
pub(crate) fn send_msg(sock: BorrowedFd<'_>, msg: &HelperMsg, fd: Option<RawFd>) -> io::Result<()> {
    let text = serde_json::to_vec(msg).map_err(io::Error::other)?;
    send(sock, &text, fd)
}

/// Most descriptors one message carries (an assignment: the code's mount and the layers').
pub(crate) const MAX_FDS: usize = 2;

/// One received message: its bytes (empty at end of stream) and the descriptors that came
/// with it, if any.
pub(crate) struct Received {
    pub(crate) data: Vec<u8>,
    /// The first descriptor.
    pub(crate) fd: Option<OwnedFd>,
    /// The second descriptor (only an assignment of a function with layers has one).
    pub(crate) second_fd: Option<OwnedFd>,
}

/// Receives one message. Received descriptors are close-on-exec.
pub(crate) fn recv(sock: BorrowedFd<'_>) -> io::Result<Received> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let res = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let msg = match res {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(list) = c {
                for raw in list {
                    // SAFETY: the kernel just installed `raw` in our table for this message;
                    // nothing else owns it, so wrapping it makes it closed exactly once.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) || msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "control message truncated",
            ));
        }
        let len = msg.bytes;
        if fds.len() > MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many descriptors in a message",
            ));
        }
        let second_fd = if fds.len() == 2 { fds.pop() } else { None };
        let fd = fds.pop();
        buf.truncate(len);
        return Ok(Received {
            data: buf,
            fd,
            second_fd,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn messages_round_trip_with_a_descriptor() {
        let (a, b) = pair();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let msg = HelperMsg::Listener {
            warnings: vec!["w".into()],
        };
        send_msg(a.as_fd(), &msg, Some(listener.as_raw_fd())).unwrap();
        let got = recv(b.as_fd()).unwrap();
        let parsed: HelperMsg = serde_json::from_slice(&got.data).unwrap();
        assert!(matches!(parsed, HelperMsg::Listener { ref warnings } if warnings == &["w"]));
        let fd = got.fd.expect("descriptor passed");
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(
            flags & libc::FD_CLOEXEC,
            0,
            "received fd must be close-on-exec"
        );
        let passed = std::net::TcpListener::from(fd);
        assert_eq!(passed.local_addr().unwrap().port(), port);
    }

    #[test]
    fn end_of_stream_is_an_empty_message() {
        let (a, b) = pair();
        drop(a);
        let got = recv(b.as_fd()).unwrap();
        assert!(got.data.is_empty());
        assert!(got.fd.is_none());
    }

    #[test]
    fn oversized_messages_are_refused() {
        let (a, _b) = pair();
        let big = vec![b'x'; MAX_MESSAGE + 1];
        assert!(send(a.as_fd(), &big, None).is_err());
    }

    #[test]
    fn failed_message_shape() {
        let m = HelperMsg::Failed {
            step: Step::Exec,
            message: "ENOENT".into(),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"failed","step":"exec","message":"ENOENT"}"#
        );
    }
}
