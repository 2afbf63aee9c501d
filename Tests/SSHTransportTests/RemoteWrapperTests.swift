import Foundation
import Testing

@testable import SSHTransport

#if canImport(Glibc)
    import Glibc
#endif

/// The remote wrapper run locally under bash (its fast path) and dash (the portable path, which the
/// test fleet's bash logins never take), each as a process-group leader the way sshd starts it.
@Suite("Remote command wrapper under bash and dash", .serialized)
struct RemoteWrapperTests {
    static let shells = ["bash", "dash"]

    /// Runs the wrapper for `command` under `shell`; `stdin` is a shell redirection or pipeline prefix
    /// standing in for the channel's stdin.
    func run(_ shell: String, _ command: String, timeout: Duration? = nil, stdin: String) throws -> (
        status: Int32, output: String
    ) {
        let directory = try makeTemporaryDirectory("govuk-fab-wrapper")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = "\(directory)/wrapper.sh"
        try SSHSession.remoteCommand(command, timeout: timeout).write(toFile: script, atomically: true, encoding: .utf8)
        return try SSHTransportTests.shell(
            "\(stdin.replacingOccurrences(of: "WRAPPED", with: "setsid \(shell) -c \"$(cat \(script))\"")); echo \"status=$?\""
        )
    }

    /// Whether `pid` has exited (a zombie waiting for the container's init counts as exited).
    func exited(_ pid: String) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
    }

    func scratchFile() -> String { "/tmp/govuk-fab-wrapper-pid.\(getpid()).\(UInt32.random(in: 0...UInt32.max))" }

    /// A stdin that stays open and never reaches EOF (a fifo opened read-write), like a live channel.
    func heldOpen(_ fifo: String) -> String { "rm -f \(fifo); mkfifo \(fifo); exec 7<>\(fifo); WRAPPED <&7 2>&1" }

    @Test("status, stdout and stderr pass through; a bare `wait` does not wait for the watcher", arguments: shells)
    func passThrough(shell: String) throws {
        let fifo = scratchFile()
        defer { unlink(fifo) }
        let held = heldOpen(fifo)
        let plain = try run(shell, "echo out; echo err >&2; exit 3", timeout: .seconds(30), stdin: held)
        #expect(plain.output == "out\nerr\nstatus=3\n")
        let waited = try run(shell, "sleep 0.1 & wait; echo waited", timeout: .seconds(30), stdin: held)
        #expect(waited.output == "waited\nstatus=0\n")
    }

    @Test("past the timeout the command's process group is terminated", arguments: shells)
    func timeoutKills(shell: String) throws {
        let pidFile = scratchFile()
        let fifo = scratchFile()
        defer {
            unlink(pidFile)
            unlink(fifo)
        }
        let result = try run(
            shell, "sleep 313 & echo $! > \(pidFile); wait", timeout: .milliseconds(500), stdin: heldOpen(fifo))
        // bash and dash report a job killed by SIGTERM as 143.
        #expect(result.output.hasSuffix("status=143\n"), "\(result.output)")
        let pid = try readText(pidFile)
        #expect(eventually(within: .seconds(5)) { exited(pid) }, "sleep \(pid) survived the timeout")
    }

    @Test("EOF on stdin (channel closed) terminates a running command", arguments: shells)
    func endOfInputKills(shell: String) throws {
        let pidFile = scratchFile()
        defer { unlink(pidFile) }
        let result = try run(
            shell, "sleep 314 & echo $! > \(pidFile); wait", timeout: .seconds(60), stdin: "sleep 1 | WRAPPED")
        #expect(result.output.hasSuffix("status=143\n"), "\(result.output)")
        let pid = try readText(pidFile)
        #expect(eventually(within: .seconds(5)) { exited(pid) }, "sleep \(pid) survived the channel closing")
    }

    @Test("what a finished command leaves running survives the channel closing", arguments: shells)
    func finishedCommandIsLeftAlone(shell: String) throws {
        let pidFile = scratchFile()
        defer { unlink(pidFile) }
        let result = try run(
            shell, "nohup sleep 315 >/dev/null 2>&1 & echo $! > \(pidFile); echo started", timeout: .seconds(60),
            stdin: "(sleep 0.3) | WRAPPED")
        #expect(result.output == "started\nstatus=0\n")
        let pid = try readText(pidFile)
        usleep(700_000) // the watcher has seen EOF by now
        #expect(!exited(pid), "the watcher killed a process the finished command left running")
        kill(pid_t(pid) ?? 0, SIGKILL)
    }
}
