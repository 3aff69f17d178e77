// The agent's Node object: created on first contact (as a kubelet does) or again if it was
// deleted, its labels merged with the agent's, and every heartbeat after that one status write.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "apis/client.h"

namespace mentat {

class NodeRegistration {
 public:
  NodeRegistration(std::shared_ptr<ApiClient> client, std::string node_name,
                   std::map<std::string, std::string> labels)
      : client_(std::move(client)), node_name_(std::move(node_name)), labels_(std::move(labels)) {}

  // Makes sure the Node exists with the agent's labels, then writes its status: Ready, the
  // heartbeat time and `status` (agentAddress, drivers, capacity, artifacts). Safe to call from
  // several threads.
  Status Heartbeat(const Json& status);

 private:
  Status EnsureNode();
  // PUT of this agent's Node, less the label changes the server refuses a node token.
  Status PutNode(Json node, const Json& before);

  std::shared_ptr<ApiClient> client_;
  const std::string node_name_;
  const std::map<std::string, std::string> labels_;
  std::mutex mu_;
  bool registered_ = false;               // the Node object is known to exist
  Json conditions_ = Json::array();       // as last written, for lastTransitionTime
};

}  // namespace mentat
