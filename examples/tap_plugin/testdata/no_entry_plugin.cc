// A shared object that is not a hublink plugin library: it exports no HublinkRegisterPlugins.
extern "C" int NotAHublinkPlugin() { return 42; }
