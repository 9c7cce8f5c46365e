using System.CommandLine;
using Hypervisor.Cli;

return HvCommand.Create().Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
