import CLibSSH2
import Foundation
import Logging
import Synchronization

extension SSHSession {
    /// How long after the remote watcher's timeout (plus its 2 s kill grace) we give up locally and close the channel.
    static let localTimeoutSlack: Duration = .seconds(5)
    static let channelWindow: UInt32 = 2 * 1024 * 1024
    static let channelPacket: UInt32 = 32 * 1024

    /// Runs `command` with the user's login shell (no PTY), delivering stdout and stderr chunks to
    /// `onOutput` as they arrive, and returns how it ended.
    ///
    /// The command always runs under a remote watcher (see ``remoteCommand(_:timeout:)``), so its
    /// process group is killed remotely when `timeout` passes, when this task is cancelled, or when the
    /// connection drops. A command that runs past `timeout` returns with
    /// `timedOut == true`; cancellation closes the channel and throws `CancellationError`.
    ///
    /// With `sudo`, the command and its watcher run as root through `sudo -n` (never prompting; see
    /// ``remoteCommand(_:timeout:sudo:)``). Callers logged in as root pass `false`.
    public func execute(
        _ command: String, sudo: Bool = false, timeout: Duration? = nil,
        onOutput: @escaping @Sendable (OutputChunk) -> Void
    ) async throws -> CommandResult {
        try await lock.withLock {
            try connection.ensureUsable(.exec)
            return try await connection.execute(
                Self.remoteCommand(command, timeout: timeout, sudo: sudo), timeout: timeout,
                openTimeout: connectTimeout,
                onOutput: onOutput)
        }
    }

    /// Runs `command` and collects its output (for short outputs).
    public func run(_ command: String, sudo: Bool = false, timeout: Duration? = nil) async throws -> (
        result: CommandResult, stdout: String, stderr: String
    ) {
        let collected = OutputCollector()
        let result = try await execute(command, sudo: sudo, timeout: timeout) { collected.append($0) }
        let (out, err) = collected.contents
        return (result, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// The shell text sent to the server (interpreted by the user's login shell, which sshd makes a
    /// process-group leader).
    ///
    /// The command is `eval`ed in that shell, with stdin from /dev/null. A background watcher holds the
    /// channel's stdin and waits for EOF or for `timeout`. sshd closes that stdin when the shell exits,
    /// and the channel's closing (cancellation, a lost connection) closes it too, so the watcher wakes
    /// for both:
    /// - the shell still running (timeout, channel closed): SIGTERM to its process group and to whatever
    ///   else holds the command's output (found as below: a `setsid` child would otherwise outlive an
    ///   interrupted run; never the shell's parent, sshd or sudo, which holds them too), SIGKILL to both
    ///   2 s later. Holders first: the watcher is in the group, and the group's SIGKILL ends it too;
    /// - the shell gone (the command finished): the session ends as a terminal's hangup ends it under
    ///   Fabric's default pty. 0.5 s later (time for a `nohup` just started to ignore the hangup, which
    ///   under Fabric's pty it often had not) SIGHUP goes to the shell's process group, so a `cmd &`
    ///   job ends with its task; then whatever still holds the command's stdout or stderr (it ignored
    ///   the hangup, as a `nohup cmd &` without redirection does, or left the group) gets SIGTERM 1 s
    ///   later and SIGKILL 2 s after that, since the channel, and so the task, cannot end while it
    ///   does. A job the operator detached (`nohup`/`setsid` with its output redirected) keeps running.
    ///
    /// The watcher finds those holders by the pipes' identity: it keeps read ends of them (opened
    /// through /proc; a reader never delays sshd's EOF) and compares each process's fd 1 and 2 with
    /// them. That scan reads every process's fds (~25 ms of the host's CPU with ~1,000 processes), so it
    /// is skipped when it cannot find anything: if the shell's parent is sshd (which keeps only the read
    /// ends), held the pipes when the watcher started and holds neither any more, it has read both to
    /// EOF, so nothing holds their write ends (under sudo the parent is sudo's or setsid's process, which
    /// holds write ends, and the scan always runs). Without /proc the
    /// watcher only sends the hangup. The watcher is started from a subshell so that it is
    /// not the shell's job (a bare `wait` in the command must not wait for it). Under bash it is a
    /// builtin `read -t`, so a command costs two forks and no exec; other shells use coreutils `timeout`
    /// and `cat`. A command killed by signal N makes the shell kill itself with N, so the server reports
    /// the signal.
    ///
    /// With `sudo`, the whole wrapper runs as root: `sudo -n -- setsid -w /bin/sh -c WRAPPER`. sudo ignores
    /// a signal sent from its own process group, and the login user may not signal root's processes, so
    /// a watcher outside sudo could never stop a sudo'd command. Inside, the watcher is root, its shell
    /// leads its own process group (setsid), and the channel's stdin still reaches it through sudo
    /// (no PTY), so EOF and the timeout stop everything the command started.
    static func remoteCommand(_ command: String, timeout: Duration?, sudo: Bool = false) -> String {
        let wrapper = watchedCommand(command, timeout: timeout)
        guard sudo else { return wrapper }
        return "exec sudo -n -- setsid -w /bin/sh -c \(shellQuote(wrapper))"
    }

    private static func watchedCommand(_ command: String, timeout: Duration?) -> String {
        var limit: String?
        if let timeout {
            let ms = max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            limit = "\(ms / 1000).\(String(ms % 1000 + 1000).dropFirst())"
        }
        let bashWait = limit.map { "read -r -t \($0) _gf_ <&3" } ?? "read -r _gf_ <&3"
        let otherWait = limit.map { "timeout \($0) cat <&3" } ?? "cat <&3"
        // _gf_held: pids whose fd 1 or 2 is one of the command's output pipes (the watcher's fds 4 and 5).
        return """
            exec 3<&0 </dev/null; _gf_pid=$$
            _gf_held() { _gf_h=; for _gf_d in /proc/[0-9]*; do for _gf_r in 4 5; do if [ $_gf_d/fd/1 -ef /proc/self/fd/$_gf_r ] || [ $_gf_d/fd/2 -ef /proc/self/fd/$_gf_r ]; then _gf_h="$_gf_h ${_gf_d#/proc/}"; break; fi; done; done; [ -n "$_gf_h" ]; }
            _gf_kh() { [ -e /proc/self/fd/5 ] && _gf_held || return 0; for _gf_p in $_gf_h; do [ "$_gf_p" = "$PPID" ] || kill -$1 $_gf_p; done; }
            _gf_ph() { for _gf_f in /proc/$PPID/fd/*; do if [ $_gf_f -ef /proc/self/fd/4 ] || [ $_gf_f -ef /proc/self/fd/5 ]; then return 0; fi; done; return 1; }
            _gf_stop() { trap '' TERM
            if kill -0 $_gf_pid; then kill -TERM -$_gf_pid || kill -TERM $_gf_pid; _gf_kh TERM; sleep 2; _gf_kh KILL; kill -KILL -$_gf_pid || kill -KILL $_gf_pid; exit 0; fi
            sleep 0.5; kill -HUP -$_gf_pid; [ -e /proc/self/fd/5 ] || exit 0; [ -z "$_gf_pp" ] || _gf_ph || exit 0; _gf_n=0
            while _gf_held; do case $_gf_n in 2) kill -TERM $_gf_h;; 6) kill -KILL $_gf_h; exit 0;; esac; _gf_n=$((_gf_n + 1)); sleep 0.5; done; }
            _gf_watch() { trap '' HUP; exec 6>&2 2>/dev/null; [ -e /proc/self/fd/6 ] && command exec 4</proc/self/fd/1 5</proc/self/fd/6; exec >/dev/null 6>&-; _gf_pp=; read -r _gf_c </proc/$PPID/comm && [ "$_gf_c" = sshd ] && _gf_ph && _gf_pp=1; }
            if [ -n "${BASH_VERSION-}" ]; then ( { _gf_watch; \(bashWait); _gf_stop; } & )
            else ( { _gf_watch; \(otherWait); _gf_stop; } & )
            fi
            exec 3<&-; unset -f _gf_held _gf_kh _gf_ph _gf_stop _gf_watch
            eval \(shellQuote(command))
            _gf_s=$?; [ $_gf_s -gt 128 ] && [ $_gf_s -lt 160 ] && kill -$((_gf_s - 128)) $$
            exit $_gf_s
            """
    }
}

/// Gathers output chunks from the callback (which may run on any thread).
public final class OutputCollector: Sendable {
    private let state = Mutex<([UInt8], [UInt8])>(([], []))
    public init() {}
    public func append(_ chunk: OutputChunk) {
        state.withLock { s in
            if chunk.stream == .stdout { s.0 += chunk.bytes } else { s.1 += chunk.bytes }
        }
    }
    /// Everything so far: (stdout, stderr).
    public var contents: ([UInt8], [UInt8]) { state.withLock { $0 } }
}

extension SessionConnection {
    func execute(
        _ remoteCommand: String, timeout: Duration?, openTimeout: Duration,
        onOutput: @Sendable (OutputChunk) -> Void
    ) async throws -> CommandResult {
        let started = ContinuousClock.now
        let openDeadline = started + openTimeout
        let channel: OpaquePointer
        do {
            guard
                let opened = try await callPointer(
                    .exec, "opening a channel", deadline: openDeadline, timeoutKind: .channelFailure,
                    {
                        libssh2_channel_open_ex(
                            session, "session", 7, SSHSession.channelWindow, SSHSession.channelPacket, nil, 0)
                    })
            else {
                throw error(.exec, "could not open a channel")
            }
            channel = opened
        } catch let refused as SSHError where refused.code != nil {
            throw refused // the server said no; the session itself is fine
        } catch {
            // A channel open abandoned half-way (timeout, cancellation) leaves per-session state behind.
            unusableReason = "a channel open was abandoned (\(error))"
            throw error
        }

        do {
            let rc = try await call(.exec, "starting the command", deadline: openDeadline, timeoutKind: .channelFailure)
            {
                libssh2_channel_process_startup(channel, "exec", 4, remoteCommand, UInt32(remoteCommand.utf8.count))
            }
            guard rc == 0 else { throw error(.exec, "the server refused to start the command") }
            return try await readUntilClosed(channel, started: started, timeout: timeout, onOutput: onOutput)
        } catch {
            await abandon(channel)
            throw error
        }
    }

    /// Reads both streams each turn (polling only when both would block, so a command filling stderr can
    /// never stall stdout), then closes the channel and reads exit status and signal.
    private func readUntilClosed(
        _ channel: OpaquePointer, started: ContinuousClock.Instant, timeout: Duration?,
        onOutput: @Sendable (OutputChunk) -> Void
    ) async throws -> CommandResult {
        let localDeadline = timeout.map { started + $0 + SSHSession.localTimeoutSlack }
        // Uninitialised: only the bytes libssh2 writes are read (zeroing 64 KiB per command showed up).
        var buffer = [UInt8](unsafeUninitializedCapacity: 64 * 1024) { _, count in count = 64 * 1024 }
        let streams: [(Int32, OutputChunk.Stream)] = [(0, .stdout), (SSH_EXTENDED_DATA_STDERR, .stderr)]
        while true {
            var progressed = false
            for (id, stream) in streams {
                while true {
                    let n = buffer.withUnsafeMutableBytes { raw in
                        libssh2_channel_read_ex(
                            channel, id, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
                    }
                    if n > 0 {
                        onOutput(OutputChunk(stream: stream, bytes: Array(buffer[0..<n])))
                        progressed = true
                        continue
                    }
                    if n == Int(LIBSSH2_ERROR_EAGAIN) || n == 0 { break }
                    throw error(.exec, "reading command output failed")
                }
            }
            if libssh2_channel_eof(channel) != 0 { break }
            if progressed { continue }
            try Task.checkCancellation()
            if try await !waitForSocket(deadline: localDeadline) {
                logger.warning(
                    "command exceeded its timeout and the remote side did not stop it; closing the channel",
                    metadata: ["host": "\(endpoint)"])
                await abandon(channel)
                return CommandResult(exitStatus: -1, exitSignal: nil, timedOut: true, duration: .now - started)
            }
        }

        let closeDeadline = ContinuousClock.now + .seconds(10)
        var rc = try await call(.exec, "closing the channel", deadline: closeDeadline, timeoutKind: .sessionClosed) {
            libssh2_channel_close(channel)
        }
        if rc == 0 {
            rc = try await call(
                .exec, "waiting for channel close", deadline: closeDeadline, timeoutKind: .sessionClosed
            ) {
                libssh2_channel_wait_closed(channel)
            }
        }
        if rc != 0 { throw error(.exec, "closing the channel failed") }
        let duration = ContinuousClock.now - started
        let status = libssh2_channel_get_exit_status(channel)
        var signalPointer: UnsafeMutablePointer<CChar>?
        var signalLength = 0
        var messagePointer: UnsafeMutablePointer<CChar>?
        var messageLength = 0
        var languagePointer: UnsafeMutablePointer<CChar>?
        var languageLength = 0
        _ = libssh2_channel_get_exit_signal(
            channel, &signalPointer, &signalLength, &messagePointer, &messageLength, &languagePointer, &languageLength)
        let signal = signalPointer.map { String(cString: $0) }
        for pointer in [signalPointer, messagePointer, languagePointer] {
            if let pointer { libssh2_free(session, pointer) }
        }
        await freeChannel(channel)
        // The watcher stops a command at its timeout with SIGTERM, then SIGKILL; a command that traps
        // SIGTERM may still exit with 143, or 124 if it ran under its own `timeout`.
        let timedOut =
            timeout.map {
                duration >= $0 && (signal == "TERM" || signal == "KILL" || status == 143 || status == 124)
            } ?? false
        return CommandResult(exitStatus: status, exitSignal: signal, timedOut: timedOut, duration: duration)
    }

    private func freeChannel(_ channel: OpaquePointer) async {
        let deadline = ContinuousClock.now + .seconds(2)
        let rc = try? await call(
            .exec, "freeing the channel", deadline: deadline, timeoutKind: .sessionClosed, cancellable: false
        ) {
            libssh2_channel_free(channel)
        }
        if rc == nil { unusableReason = "a channel could not be freed in time" }
    }

    /// Closes a channel we stop reading (cancelled or timed out). The close reaches sshd, which closes
    /// the command's stdin; the wrapper's watcher then kills the command's process group. Bounded to 2 s
    /// and not cancellable, since it is the clean-up of a cancellation.
    func abandon(_ channel: OpaquePointer) async {
        let deadline = ContinuousClock.now + .seconds(2)
        do {
            _ = try await call(
                .exec, "sending EOF", deadline: deadline, timeoutKind: .sessionClosed, cancellable: false
            ) {
                libssh2_channel_send_eof(channel)
            }
            _ = try await call(
                .exec, "closing the channel", deadline: deadline, timeoutKind: .sessionClosed, cancellable: false
            ) {
                libssh2_channel_close(channel)
            }
            _ = try await call(
                .exec, "freeing the channel", deadline: deadline, timeoutKind: .sessionClosed, cancellable: false
            ) {
                libssh2_channel_free(channel)
            }
        } catch {
            unusableReason = "an abandoned channel could not be closed (\(error))"
        }
    }
}
