import Foundation

/// One kind of `--json` line. Each conforming type is one row of docs/json-events.md; the
/// envelope adds `event` and `time`, so no line can lack them.
public protocol JSONLineEvent: Encodable, Sendable {
    /// The `event` value, e.g. `run_started`.
    static var event: String { get }
}

/// The one JSON encoder: every `--json` line and every audit record goes through it.
///
/// Keys are sorted and snake_case, slashes are not escaped, optionals are omitted (never `null`),
/// times are ISO 8601 UTC with milliseconds. U+007F, U+2028 and U+2029 are escaped too, so a line
/// splitter that treats them as line ends (Python's `splitlines`) still sees one object per line.
public enum JSONLines {
    /// `event` as one line ending in `\n`.
    public static func line<Event: JSONLineEvent>(_ event: Event, time: Date) -> String {
        encode(Envelope(time: time, body: event)) + "\n"
    }

    /// Any value, on one line without the newline.
    public static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(AuditTimestamp.format(date))
        }
        // The values are strings, numbers, booleans and arrays of them: nothing here can throw.
        guard let data = try? encoder.encode(value) else { return "{}" }
        var text = ""
        for scalar in String(decoding: data, as: UTF8.self).unicodeScalars {
            switch scalar.value {
            case 0x7F, 0x2028, 0x2029: text += String(format: "\\u%04x", scalar.value)
            default: text.unicodeScalars.append(scalar)
            }
        }
        return text
    }

    /// Seconds with millisecond precision.
    public static func seconds(_ duration: Duration) -> Double {
        (DurationText.seconds(duration) * 1000).rounded() / 1000
    }

    private struct Envelope<Body: JSONLineEvent>: Encodable {
        var time: Date
        var body: Body

        enum Key: String, CodingKey { case event, time }

        func encode(to encoder: any Encoder) throws {
            try body.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(Body.event, forKey: .event)
            try container.encode(time, forKey: .time)
        }
    }
}

// MARK: - Run events (from the runner)

/// `run_started`: the hosts and tasks about to run, and the inventory file they came from.
public struct RunStartedEvent: JSONLineEvent {
    public static let event = "run_started"
    public var environment: String
    public var hosts: [String]
    public var tasks: [String]
    /// Absolute path of the inventory file.
    public var inventory: String?
    /// How that file was chosen (``InventoryOrigin/Source``).
    public var inventorySource: String?

    public init(environment: String, hosts: [String], tasks: [String], inventory: InventoryOrigin? = nil) {
        self.environment = environment
        self.hosts = hosts
        self.tasks = tasks
        self.inventory = inventory?.path
        self.inventorySource = inventory?.source.rawValue
    }
}

/// `task_started`.
public struct TaskStartedEvent: JSONLineEvent {
    public static let event = "task_started"
    public var host: String
    public var task: String
    public var command: String?
}

/// `output`: one complete line of a host's output.
public struct OutputEvent: JSONLineEvent {
    public static let event = "output"
    public var host: String
    public var stream: String
    public var line: String
}

/// `notice`: a message from govuk-fab about one host, or (no `host`) the run.
public struct NoticeEvent: JSONLineEvent {
    public static let event = "notice"
    public var message: String
    public var host: String?
}

/// The fields of one result, shared by `host_finished` and `summary.results`.
public struct JSONResult: Encodable, Sendable {
    public var host: String
    public var task: String
    public var outcome: String
    public var durationS: Double
    public var exitStatus: Int32?
    public var signal: String?
    public var timeoutS: Double?
    public var message: String?
    public var lastStderr: String?

    public init(_ result: HostTaskResult) {
        host = result.host
        task = result.task
        outcome = result.outcome.kind
        durationS = JSONLines.seconds(result.duration)
        switch result.outcome {
        case .exited(let status): exitStatus = status
        case .signalled(let name): signal = name
        case .timedOut(let after): timeoutS = JSONLines.seconds(after)
        case .connectionFailed(let text): message = text
        case .skipped(let reason): message = reason
        }
        lastStderr = result.lastStderrLine
    }
}

/// `host_finished`: a result, its fields at the top level.
public struct HostFinishedEvent: JSONLineEvent {
    public static let event = "host_finished"
    public var result: JSONResult

    public func encode(to encoder: any Encoder) throws { try result.encode(to: encoder) }
}

/// `summary`: the end of a run.
public struct SummaryEvent: JSONLineEvent {
    public static let event = "summary"
    public var environment: String
    public var hosts: [String]
    public var tasks: [String]
    public var results: [JSONResult]
    public var failedHosts: [String]
    public var interrupted: Bool
    public var durationS: Double
    public var exitCode: Int32
    public var exitName: String

    public init(_ summary: RunSummary) {
        environment = summary.environment
        hosts = summary.hosts
        tasks = summary.tasks
        results = summary.results.map(JSONResult.init)
        failedHosts = summary.failedHosts
        interrupted = summary.interrupted
        durationS = JSONLines.seconds(summary.duration)
        exitCode = summary.exitCode.rawValue
        exitName = summary.exitCode.name
    }
}

// MARK: - CLI events (no run)

/// `error`: the run stopped before or instead of running; also on stderr as text.
public struct ErrorEvent: JSONLineEvent {
    public static let event = "error"
    public var message: String
    public var exitCode: Int32

    public init(message: String, exitCode: FleetExitCode) {
        self.message = message
        self.exitCode = exitCode.rawValue
    }
}

/// `host`: one host of the `hosts` task.
public struct HostEvent: JSONLineEvent {
    public static let event = "host"
    public var name: String
    public var address: String
    public var nodeClass: String
    public var puppetClasses: [String]

    public init(_ host: FleetHost) {
        name = host.name
        address = host.address
        nodeClass = host.nodeClass
        puppetClasses = host.puppetClasses
    }
}

/// `class`: one node class or Puppet class of the `classes` task.
public struct ClassEvent: JSONLineEvent {
    public static let event = "class"
    /// `node_class` or `puppet_class`.
    public var kind: String
    public var name: String
    /// How many hosts have it.
    public var hosts: Int

    public init(kind: String, name: String, hosts: Int) {
        self.kind = kind
        self.name = name
        self.hosts = hosts
    }
}

/// `task`: one task of `--list` (or `help`).
public struct TaskEvent: JSONLineEvent {
    public static let event = "task"
    public var name: String
    public var usage: String
    public var summary: String
    public var changesHosts: Bool
    /// `built-in`, or the playbook file that defines it.
    public var source: String
    /// The full help text, for `help:NAME` and `-d NAME`.
    public var details: String?

    public init(
        name: String, usage: String, summary: String, changesHosts: Bool, source: String, details: String? = nil
    ) {
        self.name = name
        self.usage = usage
        self.summary = summary
        self.changesHosts = changesHosts
        self.source = source
        self.details = details
    }
}

/// Every `--json` event type, for the test that checks them against docs/json-events.md.
public let allJSONLineEvents: [any JSONLineEvent.Type] = [
    RunStartedEvent.self, TaskStartedEvent.self, OutputEvent.self, NoticeEvent.self, HostFinishedEvent.self,
    SummaryEvent.self, ErrorEvent.self, HostEvent.self, ClassEvent.self, TaskEvent.self,
]
