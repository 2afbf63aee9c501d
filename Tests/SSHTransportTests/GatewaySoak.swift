import Foundation
import SSHTransport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Soak, not CI: `bench/gateway/soak.sh` runs it against the gateway benchmark's fleet (1,000 hosts
/// behind one jump host) with `GOVUK_FAB_SOAK` naming a settings file. Ten runs in one process, each
/// a fresh gateway and `echo ok` on every host; after each it prints the process's open descriptors,
/// RSS and CPU, and it fails if any host failed or descriptors or memory grew after the first runs.
@Suite(
    "Gateway soak",
    .enabled(if: ProcessInfo.processInfo.environment["GOVUK_FAB_SOAK"] != nil, "run by bench/gateway/soak.sh"))
struct GatewaySoak {
    /// `key=value` lines: gateway (user@host:port), hosts_file, port, user, key, known_hosts, runs, parallelism.
    static func settings() throws -> [String: String] {
        let path = try #require(ProcessInfo.processInfo.environment["GOVUK_FAB_SOAK"])
        var settings: [String: String] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { settings[parts[0]] = parts[1] }
        }
        return settings
    }

    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    static func residentKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }

    @Test("ten runs through one gateway in one process: every host ok, no descriptor or memory growth")
    func tenRuns() async throws {
        let s = try Self.settings()
        let gatewaySpec = try #require(s["gateway"]) // user@host:port
        let at = try #require(gatewaySpec.firstIndex(of: "@"))
        let colon = try #require(gatewaySpec.lastIndex(of: ":"))
        let gateway = SSHEndpoint(
            host: String(gatewaySpec[gatewaySpec.index(after: at)..<colon]),
            port: try #require(Int(gatewaySpec[gatewaySpec.index(after: colon)...])),
            user: String(gatewaySpec[..<at]))
        let hosts = try String(contentsOfFile: try #require(s["hosts_file"]), encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        let port = Int(s["port"] ?? "") ?? 22
        let user = s["user"] ?? "root"
        let runs = Int(s["runs"] ?? "") ?? 10
        let parallelism = Int(s["parallelism"] ?? "") ?? 100
        var settings = SSHClientOptions()
        settings.connectTimeout = .seconds(60)
        settings.useAgent = false
        settings.identityFiles = [try #require(s["key"])]
        settings.knownHostsFiles = [try #require(s["known_hosts"])]
        let options = settings
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }

        var samples: [(fds: Int, rss: Int)] = []
        for run in 1...runs {
            let cpuBefore = Self.cpuSeconds()
            let started = ContinuousClock.now
            let jump = try await SSHGateway.connect(
                chain: [gateway], options: options, reactor: reactor, logger: quietLogger)
            let targets = hosts.map { SSHEndpoint(host: $0, port: port, user: user) }
            let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                @Sendable func once(_ target: SSHEndpoint) async -> Bool {
                    do {
                        let session = try await SSHSession.connect(
                            to: target, options: options, reactor: reactor, logger: quietLogger, via: jump)
                        let (result, out, _) = try await session.run("echo ok")
                        await session.close()
                        return result.succeeded && out == "ok\n"
                    } catch {
                        print("soak: \(target.host): \(error)")
                        return false
                    }
                }
                var next = 0
                var ok = 0
                while next < min(parallelism, targets.count) {
                    let target = targets[next]
                    next += 1
                    group.addTask { await once(target) }
                }
                while let done = try await group.next() {
                    if done { ok += 1 }
                    if next < targets.count {
                        let target = targets[next]
                        next += 1
                        group.addTask { await once(target) }
                    }
                }
                return ok
            }
            let lanes = jump.connectionCount
            await jump.close()
            let wall = ContinuousClock.now - started
            let cpu = Self.cpuSeconds() - cpuBefore
            let sample = (fds: Self.openDescriptors(), rss: Self.residentKiB())
            samples.append(sample)
            print(
                String(
                    format:
                        "soak run %d: %d/%d ok, %.2f s, CPU %.2f s (%.2f ms/host), gateway logins %d, open fds %d, RSS %d KiB",
                    run, ok, hosts.count, Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18,
                    cpu, 1000 * cpu / Double(hosts.count), lanes, sample.fds, sample.rss))
            #expect(ok == hosts.count, "run \(run): \(hosts.count - ok) hosts failed")
        }
        // The first runs warm caches and the allocator; from the second on nothing may grow.
        let base = samples[min(1, samples.count - 1)]
        let last = samples[samples.count - 1]
        #expect(last.fds <= base.fds, "open descriptors grew from \(base.fds) to \(last.fds)")
        #expect(last.rss <= base.rss + 4096, "RSS grew from \(base.rss) KiB to \(last.rss) KiB")
    }
}
