import Fleet
import Foundation
import SSHConfig
import SSHTransport
import Testing

@testable import GovukFabCLI

/// `-k`, `--keepalive`, `--system-known-hosts` and `--ssh-config-path /dev/null` against ssh_config.
@Suite("Fabric connection options over ssh_config")
struct FabricConnectionOptionsTests {
    let environment = SSHConfigEnvironment(
        homeDirectory: "/home/op", localUser: "op", localHostName: "laptop", userID: 1000)

    func layer(base: SSHClientOptions) throws -> SSHConfigLayer {
        let config = try SSHConfigFile.parse(
            """
            Host cache-*
              IdentityFile /keys/cache_ed25519
              ServerAliveInterval 30
              UserKnownHostsFile /kh/cache
            """, path: "/test/ssh_config", environment: environment)
        return SSHConfigLayer(
            config: config, inventory: Inventory(name: "test"), base: base, commandLineConnectTimeout: nil,
            localUser: "op")
    }

    @Test func noKeysDropsConfigIdentityFiles() throws {
        var base = SSHClientOptions()
        base.identityFiles = ["/given/by/-i"]
        var configured = try layer(base: base)
        #expect(
            configured.connection(for: FleetHost(name: "cache-1")).options.identityFiles == [
                "/given/by/-i", "/keys/cache_ed25519",
            ])
        configured.usesConfigIdentityFiles = false
        #expect(configured.connection(for: FleetHost(name: "cache-1")).options.identityFiles == ["/given/by/-i"])
    }

    @Test func commandLineKeepaliveBeatsServerAliveInterval() throws {
        var base = SSHClientOptions()
        base.keepaliveInterval = nil // --keepalive 0
        var configured = try layer(base: base)
        #expect(configured.connection(for: FleetHost(name: "cache-1")).options.keepaliveInterval == .seconds(30))
        configured.commandLineKeepalive = true
        #expect(configured.connection(for: FleetHost(name: "cache-1")).options.keepaliveInterval == nil)
    }

    @Test func systemKnownHostsSurvivesUserKnownHostsFile() throws {
        var base = SSHClientOptions()
        base.knownHostsFiles = ["/home/op/.ssh/known_hosts", SSHConfigLayer.systemKnownHostsFile]
        let options = try layer(base: base).connection(for: FleetHost(name: "cache-1")).options
        #expect(options.knownHostsFiles == ["/kh/cache", SSHConfigLayer.systemKnownHostsFile])
    }

    @Test func devNullAndNoneMeanNoFile() throws {
        let local = LocalEnvironment(user: "op", homeDirectory: "/nonexistent-home")
        #expect(try SSHConfigLayer.load(path: "/dev/null", local: local) == nil)
        #expect(try SSHConfigLayer.load(path: "none", local: local) == nil)
        #expect(throws: SSHConfigError.self) { try SSHConfigLayer.load(path: "/nonexistent/ssh_config", local: local) }
        // No --ssh-config-path: ~/.ssh/config of the given home, which has none.
        #expect(try SSHConfigLayer.load(path: nil, local: local) == nil)
    }
}
