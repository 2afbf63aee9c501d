import Foundation
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The fault matrix of issue 11 through the govuk-fab binary, on the real test fleet logged in as
/// production does (a non-root user with NOPASSWD sudo). Every case has an upper time bound that a
/// loaded 2-core machine meets; faults are made inside the fleet's own network namespace.
@Suite(
    "Fault matrix, production shape",
    .enabled(
        if: fleetAvailable && TestFleet.supportsPacketDrop,
        "needs root, the built binary, ip netns, socat and iptables"))
struct FaultMatrixTests {
    /// `fault-1` is bridged (reachable directly and the gateway); `fault-2` and `fault-3` live behind it.
    final class Fixture: @unchecked Sendable {
        let fleet: TestFleet
        let directory: String

        init() throws {
            fleet = try TestFleet.start(TestFleetOptions(hostCount: 3, namePrefix: "fault"))
            try fleet.isolate("fault-1", bridge: true)
            try fleet.isolate("fault-2")
            try fleet.isolate("fault-3")
            directory = fleet.workDirectory + "/cli"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }

        deinit { fleet.stop() }

        /// An inventory with keepalives every 1 s, lost after 2 unanswered (3 s of silence), no
        /// command timeout; `gateway` puts the hosts behind fault-1.
        func inventory(hosts: [String], gateway: Bool, keepaliveInterval: String = "1s") throws -> String {
            let gatewayHost = fleet.hosts[0]
            var yaml = """
                name: faults
                ssh:
                  user: \(fleet.user)
                  port: 2222
                  identity_files: [\(fleet.clientKeyPath)]
                  known_hosts: [\(fleet.knownHostsPath)]
                  connect_timeout: 20s
                  keepalive_interval: \(keepaliveInterval)
                  keepalive_count_max: 2
                \(gateway ? "  gateway: \(fleet.user)@\(gatewayHost.address):\(gatewayHost.port)" : "")
                parallelism: 10
                confirm_changes: false
                hosts:

                """
            for name in hosts {
                let host = try #require(fleet.host(named: name))
                yaml += "  - {name: \(name), address: \(host.address), port: \(host.port)}\n"
            }
            let path = directory + "/faults-\(gateway ? "gw" : "direct")-\(keepaliveInterval).yml"
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// Runs govuk-fab, applies `fault` after `faultAfter`, and waits at most `limit` for it to exit
        /// (then kills it, so a hang fails the test instead of hanging it).
        func fab(
            _ arguments: [String], faultAfter: Duration = .seconds(1), limit: Duration = .seconds(60),
            waitFor: [(host: String, marker: String)] = [],
            fault: @escaping @Sendable () throws -> Void = {}
        ) throws -> (status: Int32, stdout: String, stderr: String, afterFault: Duration) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: GovukFabBinary.path)
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment["SSH_AUTH_SOCK"] = ""
            environment["NO_COLOR"] = "1"
            environment["XDG_STATE_HOME"] = directory + "/state"
            process.environment = environment
            let outPath = directory + "/out.\(UInt32.random(in: 0...UInt32.max))"
            let errPath = outPath + ".err"
            FileManager.default.createFile(atPath: outPath, contents: nil)
            FileManager.default.createFile(atPath: errPath, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: outPath)
            process.standardError = FileHandle(forWritingAtPath: errPath)
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            try process.run()
            Thread.sleep(forTimeInterval: Double(faultAfter.components.seconds))
            // The fault must hit a running command: wait (bounded) until it runs on every host named.
            let deadline = ContinuousClock.now + limit
            for (host, marker) in waitFor {
                while try survivors(marker, on: host).isEmpty && ContinuousClock.now < deadline && process.isRunning {
                    usleep(50_000)
                }
            }
            try fault()
            let faulted = ContinuousClock.now
            while process.isRunning && ContinuousClock.now - faulted < limit { usleep(50_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                Issue.record("govuk-fab still running \(limit) after the fault: it hangs")
            }
            let elapsed = ContinuousClock.now - faulted
            return (
                process.terminationStatus, (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "", elapsed
            )
        }

        /// Processes on `host` whose command line contains `marker`.
        func survivors(_ marker: String, on host: String) throws -> String {
            let pattern = "[" + String(marker.prefix(1)) + "]" + marker.dropFirst()
            return try fleet.run(on: host, "pgrep -a -f '\(pattern)' || true").output
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test("a network cut mid-command (packets dropped) ends the run as 'connection lost' without a command timeout")
    func packetDrop() async throws {
        let fixture = try await onThread { try Fixture() }
        let inventory = try fixture.inventory(hosts: ["fault-1"], gateway: false)
        defer { try? fixture.fleet.restorePackets(to: "fault-1") }
        // The command outlasts the keepalive bound by far, so a drop that lands late on a loaded
        // machine still cuts it mid-command (with 3.25 s it once finished first).
        let result = try await onThread {
            try fixture.fab(
                ["--inventory", inventory, "faults", "all", "do:sleep 20; echo done"], faultAfter: .zero,
                waitFor: [("fault-1", "sleep 20")]
            ) {
                try fixture.fleet.dropPackets(to: "fault-1")
            }
        }
        #expect(result.status != 0, "\(result)")
        #expect(result.stdout.contains("connection lost"), "\(result.stdout)")
        #expect(!result.stdout.contains("out: done"), "\(result.stdout)")
        // 3 s of silence by the arithmetic; generous for a loaded machine.
        #expect(result.afterFault < .seconds(30), "took \(result.afterFault)")
    }

    @Test("a gateway that stalls fails every host behind it within the keepalive bound, naming the gateway")
    func stalledGateway() async throws {
        let fixture = try await onThread { try Fixture() }
        let inventory = try fixture.inventory(hosts: ["fault-2", "fault-3"], gateway: true)
        defer { try? fixture.fleet.resumeBridge("fault-1") }
        let result = try await onThread {
            try fixture.fab(
                ["--inventory", inventory, "faults", "all", "do:sleep 30; echo done"],
                faultAfter: .zero, waitFor: [("fault-2", "sleep 30"), ("fault-3", "sleep 30")]
            ) {
                try fixture.fleet.stallBridge("fault-1")
            }
        }
        let gateway = fixture.fleet.hosts[0].address
        #expect(result.status != 0, "\(result)")
        for name in ["fault-2", "fault-3"] {
            let failed =
                result.stdout.split(separator: "\n").first { $0.hasPrefix("[\(name)] FAILED") }.map(String.init) ?? ""
            #expect(failed.contains(gateway), "\(name) does not name the gateway: \(result.stdout)")
        }
        #expect(result.afterFault < .seconds(30), "took \(result.afterFault)")
    }

    @Test(
        "a gateway stall that outlasts the command timeout reports the configured timeout (timeout_s), not the time elapsed"
    )
    func stalledGatewayTimeout() async throws {
        let fixture = try await onThread { try Fixture() }
        // Keepalives slower than the command timeout, so the local deadline (timeout + 5 s) ends the command.
        let inventory = try fixture.inventory(hosts: ["fault-2"], gateway: true, keepaliveInterval: "30s")
        defer { try? fixture.fleet.resumeBridge("fault-1") }
        let result = try await onThread {
            try fixture.fab(
                ["--inventory", inventory, "faults", "all", "do:sleep 3301", "--command-timeout", "3", "--json"],
                faultAfter: .zero, waitFor: [("fault-2", "sleep 3301")]
            ) {
                try fixture.fleet.stallBridge("fault-1")
            }
        }
        #expect(result.status != 0, "\(result)")
        let finished = result.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }.first { $0["event"] as? String == "host_finished" }
        #expect(finished?["outcome"] as? String == "timeout", "\(result.stdout)")
        #expect(finished?["timeout_s"] as? Double == 3.0, "\(result.stdout)")
        #expect(result.afterFault < .seconds(40), "took \(result.afterFault)")
    }

    @Test("sdo past --command-timeout as a non-root user leaves nothing running as root")
    func sudoTimeoutLeavesNothing() async throws {
        let fixture = try await onThread { try Fixture() }
        let inventory = try fixture.inventory(hosts: ["fault-1"], gateway: false)
        let started = ContinuousClock.now
        let result = try await onThread {
            try fixture.fab(
                ["--inventory", inventory, "faults", "all", "sdo:sleep 3133", "--command-timeout", "3"],
                faultAfter: .zero)
        }
        #expect(result.status != 0)
        // The outcome carries the limit (3 s), not the wall time with the kill grace.
        #expect(result.stdout.contains("timeout 3.0s"), "\(result.stdout)")
        #expect(ContinuousClock.now - started < .seconds(30))
        var left = ""
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            left = try fixture.survivors("sleep 3133", on: "fault-1")
            if !left.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        } while !left.isEmpty && ContinuousClock.now < deadline
        #expect(left.isEmpty, "still running on fault-1: \(left)")
    }
}

/// Runs blocking work (a subprocess, a fleet start) on its own thread: the test process's concurrency
/// pool has only as many threads as cores, and blocking them starves every SSH session in other suites.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
