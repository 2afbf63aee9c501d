import Fleet
import Foundation
import Synchronization
import Testing

@testable import FleetTasks

/// `goreplay.config` shows what the inventory says; its docs promise it connects to nothing, so it
/// must work (at once) for hosts that are unreachable, and no SSH connection may reach any host.
@Suite("goreplay.config connects to nothing")
struct ReplayConfigOfflineTests {
    /// A loopback TCP listener that never accepts: any connection attempt completes the handshake
    /// in the kernel and waits in the backlog, where `pendingConnection` sees it.
    final class SilentListener {
        let descriptor: Int32
        let port: Int

        init() throws {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw POSIXError(.EMFILE) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0, listen(descriptor, 16) == 0 else {
                close(descriptor)
                throw POSIXError(.EADDRINUSE)
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            self.descriptor = descriptor
            port = Int(UInt16(bigEndian: address.sin_port))
        }

        /// Whether a connection is waiting to be accepted.
        var pendingConnection: Bool {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, 0) > 0 && entry.revents & Int16(POLLIN) != 0
        }

        deinit { close(descriptor) }
    }

    /// A port on 127.0.0.1 where nothing listens (bound, then closed).
    static func closedPort() throws -> Int {
        let listener = try SilentListener()
        return listener.port
    }

    @Test("rendered for unreachable hosts without a connection, every host ok")
    func noConnection() async throws {
        let listener = try SilentListener()
        let refusedPort = try Self.closedPort()
        let inventory = Inventory(
            name: "offline",
            ssh: SSHSettings(user: "oncall", connectTimeout: .seconds(5), commandTimeout: .seconds(5)),
            services: ServiceSettings(manager: .systemd),
            replay: ReplaySettings(arguments: [
                "cache": ReplayArguments(capture: "{address}:80", targets: ["https://staging.example"])
            ]),
            hosts: [
                // Accepts TCP in the kernel but never speaks SSH: a connection attempt would hang here.
                FleetHost(name: "cache-1", address: "127.0.0.1", port: listener.port, puppetClasses: ["cache"]),
                // Nothing listens: a connection attempt would fail at once.
                FleetHost(name: "cache-2", address: "127.0.0.1", port: refusedPort, puppetClasses: ["cache"]),
            ])
        let notices = Mutex<[String: String]>([:])
        let context = RunContext(inventory: inventory)
        let task = ShowReplayConfig(invocation: TaskInvocation(name: "goreplay.config", raw: "goreplay.config"))
        let runner = FleetRunner(
            context: context, options: RunnerOptions(parallelism: 10, client: .from(inventory)),
            emit: { event in
                if case .notice(let host?, let message, _) = event {
                    notices.withLock { $0[host, default: ""] += message }
                }
            })
        let report = await runner.run([PlannedTask(task: task, hosts: inventory.hosts)])
        #expect(!listener.pendingConnection, "goreplay.config opened a TCP connection to cache-1's address")
        for record in report.outcomes {
            #expect(record.outcome.hostOutcome == .exited(status: 0), "\(record.host): \(record.outcome)")
        }
        #expect(report.outcomes.count == 2)
        let shown = notices.withLock { $0 }
        #expect(shown["cache-1"]?.contains("/etc/systemd/system/goreplay.service (systemd):") == true, "\(shown)")
        #expect(
            shown["cache-2"]?.contains(
                "ExecStart=/usr/local/bin/goreplay --input-raw 127.0.0.1:80 --output-http https://staging.example")
                == true, "\(shown)")
    }
}
