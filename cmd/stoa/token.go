package main

func tokenCommand() *command {
	return &command{name: "token", summary: "build, inspect and verify AccessToken2 tokens"}
}
