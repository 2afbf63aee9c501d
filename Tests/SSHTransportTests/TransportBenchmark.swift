import Foundation
import SSHTransport
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Prints figures, asserts only correctness. Opt in with `SSH_BENCH=1` (starts 50 sshd hosts).
@Suite(
    "Transport benchmark",
    .enabled(
        if: TestFleet.isSupported && ProcessInfo.processInfo.environment["SSH_BENCH"] == "1",
        "set SSH_BENCH=1 to run"))
struct TransportBenchmark {
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    @Test("echo ok on 50 hosts: 20 concurrent, then sequential")
    func fiftyHosts() async throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 50, namePrefix: "bench"))
        defer { fleet.stop() }
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }
        let options = SharedFleet.options(fleet)

        func once(_ host: TestFleetHost) async throws -> Bool {
            let session = try await SSHSession.connect(
                to: SSHEndpoint(host: host.address, port: host.port, user: fleet.user), options: options,
                reactor: reactor, logger: quietLogger)
            let (result, out, _) = try await session.run("echo ok")
            await session.close()
            return result.succeeded && out == "ok\n"
        }

        // Warm up (page cache, sshd first-run costs) on a few hosts.
        for host in fleet.hosts.prefix(3) { #expect(try await once(host)) }

        let cpuBefore = Self.cpuSeconds()
        let started = ContinuousClock.now
        let okCount = try await withThrowingTaskGroup(of: Bool.self) { group in
            var next = 0
            var ok = 0
            for _ in 0..<20 where next < fleet.hosts.count {
                let host = fleet.hosts[next]
                next += 1
                group.addTask { try await once(host) }
            }
            while let done = try await group.next() {
                if done { ok += 1 }
                if next < fleet.hosts.count {
                    let host = fleet.hosts[next]
                    next += 1
                    group.addTask { try await once(host) }
                }
            }
            return ok
        }
        let parallelWall = Self.seconds(ContinuousClock.now - started)
        let parallelCPU = Self.cpuSeconds() - cpuBefore
        #expect(okCount == 50)

        let sequentialCPUBefore = Self.cpuSeconds()
        let sequentialStart = ContinuousClock.now
        for host in fleet.hosts { #expect(try await once(host)) }
        let sequentialWall = Self.seconds(ContinuousClock.now - sequentialStart)
        let sequentialCPU = Self.cpuSeconds() - sequentialCPUBefore

        print(
            String(
                format: "BENCH 50 hosts, 20 concurrent: wall %.0f ms, client CPU %.1f ms/host", parallelWall * 1000,
                parallelCPU * 1000 / 50))
        print(
            String(
                format: "BENCH 50 hosts, sequential: wall %.0f ms, %.1f ms/host, client CPU %.1f ms/host",
                sequentialWall * 1000, sequentialWall * 1000 / 50, sequentialCPU * 1000 / 50))
    }
}
