namespace Hypervisor.Core;

/// <summary>
/// Base type of every exception the Hypervisor library throws for set-up, configuration and misuse.
/// </summary>
/// <remarks>
/// Guest behaviour never raises exceptions: a guest fault, a triple fault or garbage code ends a run with an
/// exit value (<see cref="Machine.VcpuExit"/>, <see cref="Machine.MachineRunResult"/>).
/// </remarks>
public class HypervisorException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public HypervisorException(string message) : base(message) { }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    public HypervisorException(string message, Exception? innerException) : base(message, innerException) { }
}

/// <summary>A guest image (firmware, kernel, flat binary) is malformed or does not fit the machine.</summary>
public sealed class GuestImageException : HypervisorException
{
    /// <summary>Creates an exception with a message.</summary>
    public GuestImageException(string message) : base(message) { }
}

/// <summary>A configuration value (memory size, accelerator specification, option) is invalid.</summary>
public sealed class HypervisorConfigurationException : HypervisorException
{
    /// <summary>Creates an exception with a message.</summary>
    public HypervisorConfigurationException(string message) : base(message) { }
}
