import Fleet
import Foundation
import SSHConfig
import SSHTransport
import Testing

@testable import GovukFabCLI

/// Precedence: command line > inventory > ssh_config > defaults, per setting.
@Suite("ssh_config under the inventory")
struct SSHConfigLayerTests {
    static let configText = """
        Host bastion
          HostName 10.9.0.1
          User jumper
          Port 2200
        Host cache-*
          HostName %h.internal
          User cacheuser
          Port 2222
          IdentityFile /keys/cache_ed25519
          ProxyJump bastion
          ConnectTimeout 7
          ServerAliveInterval 30
          StrictHostKeyChecking no
        Host 10.1.2.3
          User byaddress
          UserKnownHostsFile /kh/by-address
        Host direct-*
          ProxyJump none
          IdentitiesOnly yes
          IdentityFile /keys/only
        """

    let environment = SSHConfigEnvironment(
        homeDirectory: "/home/op", localUser: "op", localHostName: "laptop", userID: 1000)
    let local = LocalEnvironment(user: "op", userID: 1000, homeDirectory: "/home/op", hostName: "laptop")

    func layer(_ ssh: SSHSettings, commandLineTimeout: Duration? = nil) throws -> SSHConfigLayer {
        let config = try SSHConfigFile.parse(Self.configText, path: "/test/ssh_config", environment: environment)
        let inventory = Inventory(name: "test", ssh: ssh)
        var base = SSHClientOptions.from(inventory, connectTimeout: commandLineTimeout, local: local)
        base.useAgent = true
        return SSHConfigLayer(
            config: config, inventory: inventory, base: base, commandLineConnectTimeout: commandLineTimeout,
            localUser: local.user)
    }

    func settings(
        _ keys: Set<String>, user: String? = nil, port: Int = 22, knownHosts: [String] = [],
        gateway: [GatewayHop] = [], connectTimeout: Duration = .seconds(10)
    ) -> SSHSettings {
        var ssh = SSHSettings(
            user: user, port: port, identityFiles: ["/inv/key"], knownHosts: knownHosts,
            gateway: gateway, connectTimeout: connectTimeout)
        ssh.explicitKeys = keys.union(["identity_files"])
        return ssh
    }

    @Test("ssh_config fills what the inventory left to defaults, including a resolved ProxyJump")
    func configFillsGaps() throws {
        let connection = try layer(settings([])).connection(for: FleetHost(name: "cache-1"))
        #expect(connection.endpoint == SSHEndpoint(host: "cache-1.internal", port: 2222, user: "cacheuser"))
        #expect(connection.gateway == [SSHEndpoint(host: "10.9.0.1", port: 2200, user: "jumper")])
        #expect(connection.options.identityFiles == ["/inv/key", "/keys/cache_ed25519"])
        #expect(connection.options.connectTimeout == .seconds(7))
        #expect(connection.options.keepaliveInterval == .seconds(30))
    }

    @Test("the inventory's user, port, address, gateway and timeout beat ssh_config")
    func inventoryWins() throws {
        let ssh = settings(
            ["user", "port", "gateway", "connect_timeout"], user: "deploy", port: 22,
            gateway: [GatewayHop(host: "jumpbox.example")], connectTimeout: .seconds(4))
        let connection = try layer(ssh).connection(for: FleetHost(name: "cache-1", address: "10.0.0.5"))
        #expect(connection.endpoint == SSHEndpoint(host: "10.0.0.5", port: 22, user: "deploy"))
        #expect(connection.gateway == [SSHEndpoint(host: "jumpbox.example", port: 22, user: "deploy")])
        #expect(connection.options.connectTimeout == .seconds(4))
        // A per-host override beats the environment's.
        let overridden = try layer(ssh).connection(for: FleetHost(name: "cache-2", port: 2022, user: "other"))
        #expect(overridden.endpoint == SSHEndpoint(host: "cache-2.internal", port: 2022, user: "other"))
    }

    @Test("--connect-timeout beats the inventory and ssh_config")
    func commandLineWins() throws {
        let connection = try layer(
            settings(["connect_timeout"], connectTimeout: .seconds(4)), commandLineTimeout: .seconds(2)
        )
        .connection(for: FleetHost(name: "cache-1"))
        #expect(connection.options.connectTimeout == .seconds(2))
    }

    @Test("defaults apply where nobody set anything")
    func defaults() throws {
        let connection = try layer(settings([])).connection(for: FleetHost(name: "web-1"))
        #expect(connection.endpoint.host == "web-1")
        #expect(connection.endpoint.port == 22)
        #expect(connection.gateway.isEmpty)
        #expect(connection.options.connectTimeout == .seconds(10))
        // No user anywhere: the local user (the password database's, as ssh), and `~` is its home.
        #expect(connection.endpoint.user == "op")
        #expect(
            SSHClientOptions.from(Inventory(name: "test"), local: local).knownHostsFiles == [
                "/home/op/.ssh/known_hosts"
            ])
    }

    @Test("a host no block names by its name is looked up by its address")
    func byAddress() throws {
        let connection = try layer(settings([])).connection(for: FleetHost(name: "db-1", address: "10.1.2.3"))
        #expect(connection.endpoint == SSHEndpoint(host: "10.1.2.3", port: 22, user: "byaddress"))
        #expect(connection.options.knownHostsFiles == ["/kh/by-address"])
        // The inventory's known_hosts win over UserKnownHostsFile.
        let strict = try layer(settings(["known_hosts"], knownHosts: ["/inv/known_hosts"]))
            .connection(for: FleetHost(name: "db-1", address: "10.1.2.3"))
        #expect(strict.options.knownHostsFiles == ["/inv/known_hosts"])
    }

    @Test("ProxyJump none connects directly; IdentitiesOnly turns the agent off")
    func proxyJumpNoneAndIdentitiesOnly() throws {
        let connection = try layer(settings([])).connection(for: FleetHost(name: "direct-1"))
        #expect(connection.gateway.isEmpty)
        #expect(connection.options.useAgent == false)
        #expect(connection.options.identityFiles.contains("/keys/only"))
    }

    @Test("StrictHostKeyChecking no is reported and ignored")
    func strictHostKeyCheckingNeverWeakens() throws {
        let layer = try layer(settings([]))
        let warnings = layer.warnings(for: [FleetHost(name: "cache-1"), FleetHost(name: "web-1")])
        #expect(warnings.contains { $0.contains("StrictHostKeyChecking for cache-1 is ignored") })
        #expect(!warnings.contains { $0.contains("web-1") })
        // The known_hosts check stays: the layer never empties the known_hosts list.
        #expect(!layer.connection(for: FleetHost(name: "cache-1")).options.knownHostsFiles.isEmpty)
    }
}
