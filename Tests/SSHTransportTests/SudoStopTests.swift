import Foundation
import SSHTransport
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// sudo'd commands as production runs them (a non-root login with NOPASSWD sudo) stop on timeout and
/// cancellation, and nothing they started keeps running as root.
@Suite("sudo'd commands are stoppable", .enabled(if: TestFleet.isSupported, "needs root and the test fleet tools"))
final class SudoStopTests: Sendable {
    let fleet: TestFleet
    let reactor: SSHReactor

    init() async throws {
        fleet = try await offPool { try TestFleet.start(TestFleetOptions(hostCount: 1, namePrefix: "sudo")) }
        reactor = try SSHReactor()
    }

    deinit {
        reactor.shutdown()
        fleet.stop()
    }

    func connect(as user: String? = nil) async throws -> SSHSession {
        try await SharedFleet.connect(fleet, fleet.hosts[0], user: user, reactor: reactor)
    }

    /// Processes on the host whose command line contains `marker`, as "pid user".
    func survivors(_ marker: String) throws -> String {
        // The [x]yz trick keeps pgrep from matching its own shell.
        let pattern = "[" + String(marker.prefix(1)) + "]" + marker.dropFirst()
        return try fleet.run(on: fleet.hosts[0].name, "pgrep -a -f '\(pattern)' || true").output
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Polls (off the concurrency pool) until nothing matches `marker`, for up to 10 s.
    func nothingLeft(_ marker: String) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await offPool({ try self.survivors(marker) }).isEmpty { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await offPool { try self.survivors(marker) }.isEmpty
    }

    @Test("a sudo'd command past its timeout is killed with everything it started, as root")
    func timeoutStopsSudo() async throws {
        let session = try await connect()
        #expect(session.endpoint.user != "root")
        let whoami = try await session.run("id -u", sudo: true)
        #expect(whoami.stdout == "0\n", "sudo did not run as root: \(whoami.stderr)")
        let started = ContinuousClock.now
        let (result, _, stderr) = try await session.run(
            "sleep 3131 & sleep 3133; wait", sudo: true, timeout: .seconds(2))
        #expect(result.timedOut, "\(result) \(stderr)")
        // The watcher's TERM comes at 2 s; the bound is generous for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(15))
        #expect(try await nothingLeft("sleep 313"), "still running: \((try? survivors("sleep 313")) ?? "?")")
        #expect(try await session.run("true", sudo: true).result.succeeded)
        await session.close()
    }

    @Test("cancelling a sudo'd command (Ctrl-C) kills it and its children on the host")
    func cancellationStopsSudo() async throws {
        let session = try await connect()
        let task = Task { try await session.run("sleep 3141 & sleep 3143; wait", sudo: true) }
        var started = false
        for _ in 0..<100 where !started {
            started = try await !offPool { try self.survivors("sleep 3143") }.isEmpty
            if !started { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(started)
        task.cancel()
        _ = try? await task.value
        #expect(try await nothingLeft("sleep 314"), "still running: \((try? survivors("sleep 314")) ?? "?")")
        await session.close()
    }

    @Test("without the watcher inside sudo the command survives: what this suite guards against")
    func naiveSudoSurvives() async throws {
        let session = try await connect()
        // sudo outside the wrapper: the login user's watcher cannot stop root's sleep.
        let (result, _, _) = try await session.run("sudo -n -- /bin/sh -c 'sleep 3153'", timeout: .seconds(1))
        #expect(result.timedOut)
        #expect(
            try await !offPool { try self.survivors("sleep 3153") }.isEmpty,
            "the control case no longer shows the problem")
        let fleet = self.fleet
        _ = try await offPool { try fleet.run(on: fleet.hosts[0].name, "pkill -KILL -f '[s]leep 3153' || true") }
        await session.close()
    }

    @Test("logged in as root (no sudo) a timed-out command leaves nothing either")
    func timeoutAsRoot() async throws {
        let session = try await connect(as: fleet.rootUser)
        let (result, _, _) = try await session.run("sleep 3161 & sleep 3163; wait", timeout: .seconds(1))
        #expect(result.timedOut)
        #expect(try await nothingLeft("sleep 316"), "still running: \((try? survivors("sleep 316")) ?? "?")")
        await session.close()
    }
}
