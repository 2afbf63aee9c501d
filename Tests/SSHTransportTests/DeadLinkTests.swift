import Foundation
import SSHTransport
import TestFleet
import Testing

/// Dead links end a command without any command timeout: keepalives (ServerAliveInterval ×
/// ServerAliveCountMax, OpenSSH's semantics) are counted on hosts and on gateway hops. Faults are made
/// inside the fleet's own network namespace: packets dropped with iptables, or the gateway's socat
/// forwarder stopped with SIGSTOP (TCP stays up, no byte flows).
@Suite(
    "Dead links fail within the keepalive bound", .serialized,
    .enabled(if: TestFleet.supportsPacketDrop, "needs root, ip netns, socat and iptables"))
final class DeadLinkTests: Sendable {
    let fleet: TestFleet
    let reactor: SSHReactor

    /// `dead-1` is bridged (reachable directly, and a gateway); `dead-2` lives only behind it.
    init() async throws {
        fleet = try await offPool {
            let fleet = try TestFleet.start(TestFleetOptions(hostCount: 2, namePrefix: "dead"))
            try fleet.isolate("dead-1", bridge: true)
            try fleet.isolate("dead-2")
            return fleet
        }
        reactor = try SSHReactor()
    }

    deinit {
        reactor.shutdown()
        fleet.stop()
    }

    func endpoint(_ name: String) throws -> SSHEndpoint {
        let host = try #require(fleet.host(named: name))
        return SSHEndpoint(host: host.address, port: host.port, user: fleet.user)
    }

    /// Keepalive after 1 s of silence, lost after 2 unanswered: 3 s of silence in all.
    var options: SSHClientOptions {
        SSHClientOptions(
            connectTimeout: .seconds(20), keepaliveInterval: .seconds(1), useAgent: false,
            identityFiles: [fleet.clientKeyPath], knownHostsFiles: [fleet.knownHostsPath],
            keepaliveCountMax: 2)
    }

    /// Runs a silent command with no timeout on `host`, makes `fault` once the command runs there
    /// (seen on the host itself: cutting the link during channel open or exec would test the connect
    /// bound instead), and returns the error it ended with and how long after the fault.
    func runThroughFault(
        _ session: SSHSession, on host: String, fault: @escaping @Sendable () throws -> Void
    ) async throws -> (error: SSHError?, afterFault: Duration) {
        let marker = "deadlink-\(UInt32.random(in: 0...UInt32.max))"
        let task = Task { try await session.run(": \(marker); sleep 3; echo done; sleep 60") }
        let fleet = self.fleet
        // "[d]eadlink-…" matches the command's shell but not this pgrep's own command line.
        let pattern = "[" + String(marker.prefix(1)) + "]" + marker.dropFirst()
        let limit = ContinuousClock.now + .seconds(20)
        while try await offPool({ try fleet.run(on: host, "pgrep -f '\(pattern)' || true").output })
            .trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        {
            guard ContinuousClock.now < limit else {
                task.cancel()
                Issue.record("the command never started on \(host)")
                return (nil, .zero)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await offPool { try fault() }
        let faulted = ContinuousClock.now
        do {
            let result = try await task.value
            Issue.record("the command finished although its link was cut: \(result)")
            return (nil, ContinuousClock.now - faulted)
        } catch let error as SSHError {
            return (error, ContinuousClock.now - faulted)
        }
    }

    @Test("packets to a host dropped mid-command: the run ends as 'connection lost' within the bound")
    func packetDropEndsTheCommand() async throws {
        let session = try await SSHSession.connect(
            to: try endpoint("dead-1"), options: options, reactor: reactor, logger: quietLogger)
        let fleet = self.fleet
        let (error, elapsed) = try await runThroughFault(session, on: "dead-1") { try fleet.dropPackets(to: "dead-1") }
        defer { try? fleet.restorePackets(to: "dead-1") }
        let message = error.map { "\($0)" } ?? ""
        #expect(error?.kind == .sessionClosed, "\(message)")
        #expect(message.contains("connection lost") && message.contains("2 keepalives unanswered"), "\(message)")
        // 3 s of silence by the arithmetic; the bound is generous for a loaded CI machine.
        #expect(elapsed < .seconds(20), "took \(elapsed)")
        await session.close()
    }

    @Test("a host dying mid-command is 'connection lost', not a bare transport read error")
    func hostDies() async throws {
        let session = try await SSHSession.connect(
            to: try endpoint("dead-1"), options: options, reactor: reactor, logger: quietLogger)
        let fleet = self.fleet
        let (error, elapsed) = try await runThroughFault(session, on: "dead-1") { try fleet.stopHost("dead-1") }
        let message = error.map { "\($0)" } ?? ""
        #expect(error?.kind.isConnectivity == true, "\(message)")
        #expect(message.contains("connection lost"), "\(message)")
        // Seen by the socket closing, not by waiting for keepalives.
        #expect(!message.contains("keepalives unanswered"), "\(message)")
        #expect(elapsed < .seconds(20), "took \(elapsed)")
        await session.close()
    }

    @Test("a host behind a gateway whose link drops fails within the bound, naming the gateway")
    func packetDropBehindGateway() async throws {
        let gateway = try await SSHGateway.connect(
            chain: [try endpoint("dead-1")], options: options, reactor: reactor, logger: quietLogger)
        let session = try await SSHSession.connect(
            to: try endpoint("dead-2"), options: options, reactor: reactor, logger: quietLogger, via: gateway)
        let fleet = self.fleet
        let (error, elapsed) = try await runThroughFault(session, on: "dead-2") { try fleet.dropPackets(to: "dead-2") }
        defer { try? fleet.restorePackets(to: "dead-2") }
        let message = error.map { "\($0)" } ?? ""
        #expect(message.contains("connection lost"), "\(message)")
        #expect(message.contains("gateway \(try endpoint("dead-1"))"), "\(message)")
        #expect(elapsed < .seconds(20), "took \(elapsed)")
        // Only that host's link is dead: the gateway itself still works.
        #expect(gateway.failureReason == nil)
        await session.close()
        await gateway.close()
    }

    @Test("a gateway that stalls (its forwarder SIGSTOPped) fails the host behind it within the bound, naming it")
    func stalledGateway() async throws {
        let gateway = try await SSHGateway.connect(
            chain: [try endpoint("dead-1")], options: options, reactor: reactor, logger: quietLogger)
        let session = try await SSHSession.connect(
            to: try endpoint("dead-2"), options: options, reactor: reactor, logger: quietLogger, via: gateway)
        let fleet = self.fleet
        let (error, elapsed) = try await runThroughFault(session, on: "dead-2") { try fleet.stallBridge("dead-1") }
        defer { try? fleet.resumeBridge("dead-1") }
        let message = error.map { "\($0)" } ?? ""
        #expect(error?.kind.isConnectivity == true, "\(message)")
        #expect(message.contains(try endpoint("dead-1").description), "\(message)")
        #expect(elapsed < .seconds(20), "took \(elapsed)")
        // The gateway hop counted its own keepalives and gave up too.
        #expect(try await eventuallyAsync(within: .seconds(20)) { gateway.failureReason != nil })
        await session.close()
        await gateway.close()
    }
}

/// Polls `condition` every 100 ms for up to `limit`.
func eventuallyAsync(within limit: Duration, _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return condition()
}
